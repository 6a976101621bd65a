package emulator_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berthhq/berth/internal/emulator"
)

// A step's stdout and stderr reach the cluster's LogUri, gzipped, LogDelay
// after it ends, where the SDK's s3 client reads them; before that, and
// for what is not there, S3 answers NoSuchKey.
func TestStepLogs(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	in := input("logs", 1)
	in.LogUri = aws.String("s3://logs/emr/")
	id := h.ready(t, in)
	sid := h.add(t, id, command("talks", "sh", "-c", "echo hello; echo oops >&2; exit 1"))[0]
	h.waitStep(t, id, sid, emulator.StepFailed)
	logFile := aws.ToString(h.step(t, id, sid).Status.FailureDetails.LogFile)
	bucket, key, _ := strings.Cut(strings.TrimPrefix(logFile, "s3://"), "/")
	if bucket != "logs" || key != "emr/"+id+"/steps/"+sid+"/stderr.gz" {
		t.Fatalf("LogFile %q", logFile)
	}

	ctx := context.Background()
	_, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nsk *s3types.NoSuchKey
	if !errors.As(err, &nsk) {
		t.Fatalf("GetObject before the log delay: %v, want NoSuchKey", err)
	}
	h.advance(emulator.DefaultLogDelay)
	for name, want := range map[string]string{"stderr.gz": "oops\n", "stdout.gz": "hello\n"} {
		k := "emr/" + id + "/steps/" + sid + "/" + name
		out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("GetObject %s: %v", k, err)
		}
		if got := gunzip(t, out.Body); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	head, err := h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil || aws.ToInt64(head.ContentLength) == 0 || aws.ToString(head.ETag) == "" {
		t.Errorf("HeadObject: %+v, %v", head, err)
	}
	_, err = h.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("emr/none")})
	var nf *s3types.NotFound
	if !errors.As(err, &nf) {
		t.Errorf("HeadObject of no key: %v, want NotFound", err)
	}
	if keys := h.emu.ObjectKeys("logs", "emr/"+id+"/"); len(keys) != 2 {
		t.Errorf("objects under the cluster's logs: %v", keys)
	}
}

// Objects put over S3's API, or with PutObject, read back either way.
func TestObjects(t *testing.T) {
	h := newHarness(t, emulator.Options{})
	ctx := context.Background()
	if _, err := h.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("dir/a.txt"), Body: strings.NewReader("from the sdk")}); err != nil {
		t.Fatal(err)
	}
	if b, ok := h.emu.Object("b", "dir/a.txt"); !ok || string(b) != "from the sdk" {
		t.Errorf("Object after the SDK's PutObject: %q %v", b, ok)
	}
	h.emu.PutObject("b", "dir/b.txt", []byte("from a test"))
	out, err := h.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("dir/b.txt"), Range: aws.String("bytes=5-")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(out.Body); string(b) != "a test" {
		t.Errorf("a range of an object: %q", b)
	}
	resp, err := http.Get(h.url + "/b/no/such/key")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !bytes.Contains(body, []byte("<Code>NoSuchKey</Code>")) {
		t.Errorf("GET of no key: %d %s", resp.StatusCode, body)
	}
}

func gunzip(t *testing.T, r io.ReadCloser) string {
	t.Helper()
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
