package moto_test

// What moto does with the S3 calls Berth makes to read EMR's step logs.

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berthhq/berth/internal/testenv/moto"
)

// newBucket makes a bucket of a fresh name: bucket names are global in
// moto as on AWS, across the accounts of Shared handles too.
func newBucket(t *testing.T) (*s3.Client, string) {
	t.Helper()
	c := s3.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"), func(o *s3.Options) { o.UsePathStyle = true })
	name := "berth-" + strings.ToLower(rand.Text())
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: &name}); err != nil {
		t.Fatalf("CreateBucket(%s): %v", name, err)
	}
	return c, name
}

func TestS3GzipObjectComesBackAsWritten(t *testing.T) {
	t.Parallel()
	c, bucket := newBucket(t)
	ctx := context.Background()
	const text = "stdout of a step\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	// Where EMR puts a step's output under the cluster's LogUri.
	key := "emr/j-1/steps/s-1/stdout.gz"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &bucket, Key: &key, Body: bytes.NewReader(gz.Bytes()),
		ContentType: aws.String("application/gzip"), ContentEncoding: aws.String("gzip"),
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading the object: %v", err)
	}
	// Content-Encoding gzip notwithstanding, neither moto nor the SDK
	// unpacks the body: the reader gunzips.
	if !bytes.Equal(body, gz.Bytes()) {
		t.Fatalf("GetObject gave %d bytes, not the %d gzip bytes written", len(body), gz.Len())
	}
	if got := aws.ToString(out.ContentEncoding); got != "gzip" {
		t.Errorf("ContentEncoding = %q, want gzip", got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if got, err := io.ReadAll(zr); err != nil || string(got) != text {
		t.Errorf("gunzipped: %q, %v; want %q", got, err, text)
	}

	// moto checks no permissions: another account reads the object too.
	other := s3.NewFromConfig(moto.Shared(t).AWSConfig("us-east-1"), func(o *s3.Options) { o.UsePathStyle = true })
	if out, err := other.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key}); err != nil {
		t.Errorf("GetObject from another account: %v, want the object", err)
	} else {
		out.Body.Close()
	}
}

func TestS3Missing(t *testing.T) {
	t.Parallel()
	c, bucket := newBucket(t)
	ctx := context.Background()
	var noSuchKey *types.NoSuchKey
	var notFound *types.NotFound
	tests := []struct {
		name     string
		call     func() error
		typed    any // the SDK's error type, or nil if it has none for it
		wantCode string
	}{
		{"GetObject of a missing key", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: aws.String("no/such/key")})
			return err
		}, &noSuchKey, "NoSuchKey"},
		// GetObject models no NoSuchBucket: it is a generic API error.
		{"GetObject of a missing bucket", func() error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket + "-gone"), Key: aws.String("k")})
			return err
		}, nil, "NoSuchBucket"},
		// HEAD answers have no body, hence no code beyond NotFound.
		{"HeadObject of a missing key", func() error {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("no/such/key")})
			return err
		}, &notFound, "NotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			status, code := errorShape(err)
			if status != 404 || code != tt.wantCode {
				t.Errorf("status %d, code %q (%v); want 404, %q", status, code, err, tt.wantCode)
			}
			if tt.typed != nil && !errors.As(err, tt.typed) {
				t.Errorf("%v is not a %T", err, tt.typed)
			}
		})
	}
}
