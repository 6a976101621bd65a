package moto_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/emr"

	"github.com/berthhq/berth/internal/testenv/moto"
)

func TestMain(m *testing.M) { moto.Main(m) }

func TestStartServesResetsAndStops(t *testing.T) {
	var s *moto.Server
	t.Run("own server", func(t *testing.T) {
		s = moto.Start(t)
		u, err := url.Parse(s.URL())
		if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "" {
			t.Fatalf("URL() = %q, want http://127.0.0.1:PORT", s.URL())
		}
		c := emr.NewFromConfig(s.AWSConfig("us-east-1"))
		runCluster(t, c, nil)
		if n := len(listClusters(t, c)); n != 1 {
			t.Fatalf("%d clusters before Reset, want 1", n)
		}
		s.Reset(t)
		if n := len(listClusters(t, c)); n != 0 {
			t.Errorf("%d clusters after Reset, want 0", n)
		}
	})
	if s == nil {
		t.Skip("no moto_server; the subtest says why")
	}
	// The subtest's cleanup has stopped the server.
	resp, err := http.Get(s.URL() + "/moto-api/")
	if err == nil {
		resp.Body.Close()
		t.Errorf("the server still answers on %s after its test ended", s.URL())
	}
}

func TestSharedHandlesSeeOnlyTheirOwnAccount(t *testing.T) {
	t.Parallel()
	a := emr.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"))
	b := emr.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"))
	id := runCluster(t, a, nil)
	if got := listClusters(t, a); len(got) != 1 || got[0] != id {
		t.Errorf("the first handle lists %v, want [%s]", got, id)
	}
	if got := listClusters(t, b); len(got) != 0 {
		t.Errorf("the second handle lists %v, want none", got)
	}
	if _, err := b.DescribeCluster(context.Background(), &emr.DescribeClusterInput{ClusterId: &id}); err == nil {
		t.Errorf("the second handle describes the first one's cluster %s", id)
	}
}
