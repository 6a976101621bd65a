package emulator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Server is an emulator served over HTTP on a listener of its own, for a
// process (`berth emulator`, the demo) rather than a test's httptest
// server.
type Server struct {
	*Emulator
	url    string
	http   *http.Server
	served chan error
}

// Listen starts an emulator with opts and serves it on addr.
func Listen(addr string, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{Emulator: New(opts), url: "http://" + ln.Addr().String(), served: make(chan error, 1)}
	s.http = &http.Server{Handler: s.Emulator, ReadHeaderTimeout: 10 * time.Second}
	go func() { s.served <- s.http.Serve(ln) }()
	return s, nil
}

// URL is where the emulator answers, EMR and S3 alike.
func (s *Server) URL() string { return s.url }

// Done yields the error that ended serving, should it end by itself.
func (s *Server) Done() <-chan error { return s.served }

// Close ends the emulator, then the HTTP server. The emulator goes first:
// that ends answers held back by latency, which Shutdown would wait for.
func (s *Server) Close() error {
	cerr := s.Emulator.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	serr := s.http.Shutdown(ctx)
	return errors.Join(cerr, serr)
}
