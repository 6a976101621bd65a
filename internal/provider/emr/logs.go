package emr

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/berthhq/berth/internal/berth"
)

// Objects is the part of S3's client the provider reads logs with.
type Objects interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// maxLog bounds how much of one log is read: the end of a long log is what
// a user wants, but S3 serves it gzipped, so it is read from the start.
const maxLog = 8 << 20

// StepLogs reads a step's stdout and stderr from the cluster's log URI,
// where EMR writes them (gzipped) some minutes after the step. Until they
// are there, the answer says where they will be.
func (p *Provider) StepLogs(ctx context.Context, clusterID, stepID string) (berth.Logs, error) {
	c := p.cluster(clusterID)
	c.mu.Lock()
	uri := c.logURI
	c.mu.Unlock()
	if uri == "" {
		// Not described by this process (an ended cluster after a
		// restart): ask EMR, as the cluster may have been started on the
		// fallback spec, with a log URI of its own.
		if _, err := p.DescribeCluster(ctx, clusterID); err != nil {
			return berth.Logs{}, &berth.Error{Kind: berth.ErrUnavailable, Public: "could not ask EMR where the cluster keeps its logs: " + err.Error(), Op: "emr: step logs", Err: err}
		}
		c.mu.Lock()
		uri = c.logURI
		c.mu.Unlock()
	}
	if uri == "" {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "the pool's clusters keep no logs: set emr.log_uri")
	}
	bucket, prefix, err := splitS3(uri)
	if err != nil {
		return berth.Logs{}, berth.Errorf(berth.ErrNotFound, "log_uri %q: %v", uri, err)
	}
	dir := strings.TrimSuffix(prefix, "/")
	if dir != "" {
		dir += "/"
	}
	dir += clusterID + "/steps/" + stepID + "/"
	logs := berth.Logs{Location: "s3://" + bucket + "/" + dir}
	if p.o.S3 == nil {
		return logs, nil
	}
	var missing int
	for _, f := range []struct {
		name string
		to   *string
	}{{"stdout.gz", &logs.Stdout}, {"stderr.gz", &logs.Stderr}} {
		text, found, err := p.readLog(ctx, bucket, dir+f.name)
		if err != nil {
			return berth.Logs{}, err
		}
		if !found {
			missing++
		}
		*f.to = text
	}
	if missing == 2 {
		logs.Stderr = fmt.Sprintf("EMR has not written this step's logs to %s yet; it does a few minutes after the step", logs.Location)
	}
	return logs, nil
}

// readLog reads and unzips one log object; found is false when S3 has no
// such object (yet).
func (p *Provider) readLog(ctx context.Context, bucket, key string) (string, bool, error) {
	out, err := p.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		var nk *types.NoSuchKey
		code, msg, _ := apiError(err)
		if errors.As(err, &nk) || code == "NoSuchKey" || code == "NotFound" {
			return "", false, nil
		}
		if msg == "" {
			msg = rootCause(err).Error()
		}
		return "", false, &berth.Error{Kind: berth.ErrUnavailable, Public: fmt.Sprintf("could not read s3://%s/%s: %s", bucket, key, msg), Op: "emr: read step log", Err: err}
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, maxLog))
	if err != nil {
		return "", false, &berth.Error{Kind: berth.ErrUnavailable, Public: fmt.Sprintf("could not read s3://%s/%s", bucket, key), Op: "emr: read step log", Err: err}
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		// Not gzipped after all: show it as it is.
		return string(raw), true, nil
	}
	// A log cut short (past maxLog, or a broken object) is shown as far
	// as it reads.
	text, _ := io.ReadAll(io.LimitReader(zr, maxLog))
	return string(text), true, nil
}

// splitS3 reads s3://bucket/prefix.
func splitS3(uri string) (bucket, prefix string, err error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "s3" && u.Scheme != "s3n") || u.Host == "" {
		return "", "", errors.New("not an s3:// URI")
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
