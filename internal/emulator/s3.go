package emulator

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// objectStore is the emulator's S3: objects by "bucket/key". Every bucket
// exists. It has its own lock so that reads of logs do not wait on the
// clusters.
type objectStore struct {
	mu      sync.Mutex
	objects map[string]object
}

type object struct {
	body        []byte
	contentType string
	etag        string
	modified    time.Time
}

func (s *objectStore) put(bucket, key string, body []byte, contentType string, now time.Time) object {
	sum := md5.Sum(body)
	o := object{body: slices.Clone(body), contentType: contentType, etag: `"` + hex.EncodeToString(sum[:]) + `"`, modified: now}
	if o.contentType == "" {
		o.contentType = "binary/octet-stream"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[bucket+"/"+key] = o
	return o
}

func (s *objectStore) get(bucket, key string) (object, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[bucket+"/"+key]
	return o, ok
}

// PutObject stores body at bucket and key of the emulator's S3.
func (e *Emulator) PutObject(bucket, key string, body []byte) {
	e.s3.put(bucket, key, body, "", e.clk.Now())
}

// Object returns the object at bucket and key of the emulator's S3.
func (e *Emulator) Object(bucket, key string) ([]byte, bool) {
	o, ok := e.s3.get(bucket, key)
	return slices.Clone(o.body), ok
}

// ObjectKeys lists the keys of bucket that start with prefix, sorted.
func (e *Emulator) ObjectKeys(bucket, prefix string) []string {
	e.s3.mu.Lock()
	defer e.s3.mu.Unlock()
	var keys []string
	for k := range e.s3.objects {
		if b, key, _ := strings.Cut(k, "/"); b == bucket && strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
	}
	slices.Sort(keys)
	return keys
}

// splitS3 splits an s3:// (or s3n://, s3a://) URI into its bucket and key
// or prefix.
func splitS3(uri string) (bucket, key string, ok bool) {
	for _, scheme := range []string{"s3://", "s3n://", "s3a://"} {
		if rest, found := strings.CutPrefix(uri, scheme); found {
			bucket, key, _ = strings.Cut(rest, "/")
			return bucket, key, bucket != ""
		}
	}
	return "", "", false
}

// logKeyPath is where EMR puts a step's log file name:
// <LogUri>/<cluster id>/steps/<step id>/<name>, as bucket/key.
func (e *Emulator) logKeyPath(c *cluster, s *step, name string) string {
	bucket, prefix, ok := splitS3(c.in.LogURI)
	if !ok {
		return ""
	}
	key := c.id + "/steps/" + s.id + "/" + name
	if prefix = strings.Trim(prefix, "/"); prefix != "" {
		key = prefix + "/" + key
	}
	return bucket + "/" + key
}

// scheduleLogs writes a step's stdout and stderr to its cluster's LogUri,
// gzipped, LogDelay after it ended: EMR's log pusher is late too. A step
// that never ran has no logs.
func (e *Emulator) scheduleLogs(c *cluster, s *step) {
	if s.started.IsZero() {
		return
	}
	if _, _, ok := splitS3(c.in.LogURI); !ok {
		return
	}
	e.afterFunc(e.opts.LogDelay, func() {
		now := e.clk.Now()
		for name, out := range map[string]*capBuffer{"stdout.gz": s.stdout, "stderr.gz": s.stderr} {
			bucket, key, _ := strings.Cut(e.logKeyPath(c, s, name), "/")
			e.s3.put(bucket, key, gzipped(out.Bytes()), "", now)
		}
	})
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// serveS3 answers S3's path-style object requests: GET and HEAD (ranges
// too), PUT and DELETE of /<bucket>/<key>.
func (e *Emulator) serveS3(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket == "" || key == "" {
		s3Error(w, http.StatusNotImplemented, "NotImplemented", "The emulator's S3 answers only object requests, path-style: /<bucket>/<key>.", r.URL.Path)
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		o, ok := e.s3.get(bucket, key)
		if !ok {
			s3Error(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", key)
			return
		}
		w.Header().Set("Content-Type", o.contentType)
		w.Header().Set("ETag", o.etag)
		http.ServeContent(w, r, "", o.modified, bytes.NewReader(o.body))
	case http.MethodPut:
		body, err := readObjectBody(r)
		if err != nil {
			s3Error(w, http.StatusBadRequest, "InvalidRequest", err.Error(), key)
			return
		}
		o := e.s3.put(bucket, key, body, r.Header.Get("Content-Type"), e.clk.Now())
		w.Header().Set("ETag", o.etag)
		w.WriteHeader(http.StatusOK)
	case http.MethodDelete:
		e.s3.mu.Lock()
		delete(e.s3.objects, bucket+"/"+key)
		e.s3.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Error(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.", key)
	}
}

// readObjectBody reads a PUT's body, undoing the aws-chunked encoding the
// SDK uses to send a checksum after the data.
func readObjectBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("the emulator takes objects of at most %d bytes", maxBody)
	}
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") ||
		strings.HasPrefix(r.Header.Get("X-Amz-Content-Sha256"), "STREAMING-") {
		return decodeAWSChunked(b)
	}
	return b, nil
}

// decodeAWSChunked decodes "<hex size>[;ext]\r\n<data>\r\n" chunks up to
// the empty one, after which come trailers.
func decodeAWSChunked(b []byte) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	var out []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, errors.New("aws-chunked body: a chunk header is cut short")
		}
		size, _, _ := strings.Cut(strings.TrimSpace(line), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 || n > maxBody {
			return nil, fmt.Errorf("aws-chunked body: bad chunk size %q", size)
		}
		if n == 0 {
			return out, nil
		}
		chunk := make([]byte, n)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return nil, errors.New("aws-chunked body: a chunk is cut short")
		}
		out = append(out, chunk...)
		if crlf, err := br.ReadString('\n'); err != nil || strings.TrimSpace(crlf) != "" {
			return nil, errors.New("aws-chunked body: a chunk does not end with CRLF")
		}
	}
}

type s3ErrorBody struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Key       string   `xml:"Key,omitempty"`
	RequestID string   `xml:"RequestId"`
}

func s3Error(w http.ResponseWriter, status int, code, msg, key string) {
	b, _ := xml.Marshal(s3ErrorBody{Code: code, Message: msg, Key: key, RequestID: "EMULATOR"})
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(b)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(b)
}
