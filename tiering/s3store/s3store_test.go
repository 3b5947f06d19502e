package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objtest"
	"github.com/strata-broker/strata/tiering/s3store"
	"github.com/strata-broker/strata/tiering/s3test"
)

func newStore(t *testing.T, srv *s3test.Server, prefix string, tweak func(*s3store.Config)) *s3store.Store {
	t.Helper()
	cfg := s3store.Config{Bucket: srv.Bucket, Prefix: prefix, S3Options: srv.Options()}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := s3store.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	var n atomic.Int64
	objtest.Run(t, func(t *testing.T) objstore.Store {
		// One bucket, a prefix per subtest: subtests cannot see each
		// other's keys, and prefixes get exercised everywhere.
		return newStore(t, srv, fmt.Sprintf("conformance/%d", n.Add(1)), nil)
	})
}

func putString(ctx context.Context, s objstore.Store, key, v string) error {
	return s.Put(ctx, key, strings.NewReader(v), int64(len(v)))
}

func getString(t *testing.T, s objstore.Store, key string) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key, 0, -1)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q) body: %v", key, err)
	}
	return string(b)
}

// The server goes away mid-test: a Put fails within its context's deadline
// (retries end with the context, nothing hangs), and once the server is
// back the same Store works again and earlier objects are intact.
func TestServerStoppedMidway(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	s := newStore(t, srv, "fault", nil)
	if err := putString(t.Context(), s, "before", "v1"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := putString(ctx, s, "during", "v2")
	if err == nil {
		t.Fatal("Put succeeded with the server stopped")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Put with the server stopped took %v; the context allowed 2s", took)
	}
	t.Logf("Put with the server down: %v", err)

	srv.Start()
	if err := putString(t.Context(), s, "after", "v3"); err != nil {
		t.Fatalf("Put after the server came back: %v", err)
	}
	if got := getString(t, s, "before"); got != "v1" {
		t.Fatalf("object written before the outage = %q", got)
	}
	if _, err := s.Head(t.Context(), "during"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head of the failed Put's key: %v, want ErrNotFound", err)
	}
}

// proxy forwards to the real server and lets a test answer some requests
// itself. It keeps the client's Host header, which is part of the SigV4
// signature.
type proxy struct {
	*httptest.Server
	mu   sync.Mutex
	log  []string // "METHOD path?query" of every request seen
	hook func(w http.ResponseWriter, r *http.Request) bool
}

func newProxy(t *testing.T, target string, hook func(w http.ResponseWriter, r *http.Request) bool) *proxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{hook: hook}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host
	}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.log = append(p.log, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		p.mu.Unlock()
		if p.hook != nil && p.hook(w, r) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *proxy) requests(match func(string) bool) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.log {
		if match(l) {
			out = append(out, l)
		}
	}
	return out
}

func s3Error(w http.ResponseWriter, r *http.Request, status int, code string) {
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>injected by the test</Message><RequestId>test</RequestId></Error>`, code)
}

func viaProxy(t *testing.T, srv *s3test.Server, p *proxy, tweak func(*s3store.Config)) *s3store.Store {
	return newStore(t, srv, "proxied", func(c *s3store.Config) {
		c.Endpoint = p.URL
		c.RetryDelay = func(int) time.Duration { return time.Millisecond }
		if tweak != nil {
			tweak(c)
		}
	})
}

func TestRetriesThrottlingAndServerErrors(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name   string
		status int
		code   string
	}{
		{"SlowDown", http.StatusServiceUnavailable, "SlowDown"},
		{"InternalError", http.StatusInternalServerError, "InternalError"},
		{"BadGateway", http.StatusBadGateway, "BadGateway"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failures atomic.Int32
			failing := func(w http.ResponseWriter, r *http.Request) bool {
				if failures.Add(1) <= 2 {
					s3Error(w, r, tc.status, tc.code)
					return true
				}
				return false
			}
			p := newProxy(t, srv.Endpoint, failing)
			s := viaProxy(t, srv, p, nil)
			if err := putString(t.Context(), s, "retried/"+tc.name, "value"); err != nil {
				t.Fatalf("Put after two %d %s answers: %v", tc.status, tc.code, err)
			}
			if n := len(p.requests(func(string) bool { return true })); n != 3 {
				t.Fatalf("proxy saw %d requests, want 3 (two failures, one success)", n)
			}
			failures.Store(0)
			if got := getString(t, s, "retried/"+tc.name); got != "value" {
				t.Fatalf("Get after two failures = %q", got)
			}
		})
	}
}

func TestPersistentThrottlingFailsAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	p := newProxy(t, srv.Endpoint, func(w http.ResponseWriter, r *http.Request) bool {
		s3Error(w, r, http.StatusServiceUnavailable, "SlowDown")
		return true
	})
	s := viaProxy(t, srv, p, func(c *s3store.Config) { c.MaxAttempts = 3 })
	err := putString(t.Context(), s, "k", "v")
	if err == nil || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("Put against a server that always throttles: %v, want an error naming SlowDown", err)
	}
	if n := len(p.requests(func(string) bool { return true })); n != 3 {
		t.Fatalf("proxy saw %d requests, want MaxAttempts = 3", n)
	}
}

// By default (no RetryDelay) throttling backs off: two SlowDowns cost
// time, then the request succeeds.
func TestDefaultBackoffOnSlowDown(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	var failures atomic.Int32
	var times []time.Time
	var mu sync.Mutex
	p := newProxy(t, srv.Endpoint, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if failures.Add(1) <= 2 {
			s3Error(w, r, http.StatusServiceUnavailable, "SlowDown")
			return true
		}
		return false
	})
	s := newStore(t, srv, "backoff", func(c *s3store.Config) { c.Endpoint = p.URL })
	if err := putString(t.Context(), s, "k", "v"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(times) != 3 {
		t.Fatalf("%d attempts, want 3", len(times))
	}
	// Jittered exponential backoff: the two waits add up to a noticeable
	// pause, never an immediate hammering of a throttled server.
	waited := times[2].Sub(times[0])
	t.Logf("delays between attempts: %v, %v", times[1].Sub(times[0]), times[2].Sub(times[1]))
	if waited < 20*time.Millisecond {
		t.Fatalf("three attempts within %v: no backoff after SlowDown", waited)
	}
}

func TestBatchDeleteFallback(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv.Endpoint, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Query().Has("delete") {
			s3Error(w, r, http.StatusNotImplemented, "NotImplemented")
			return true
		}
		return false
	})
	s := viaProxy(t, srv, p, nil)
	ctx := t.Context()
	keys := []string{"d/1", "d/2", "d/3"}
	for _, k := range keys {
		if err := putString(ctx, s, k, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, keys[:2]...); err != nil {
		t.Fatalf("Delete with batch delete unsupported: %v", err)
	}
	if err := s.Delete(ctx, keys[2], "d/missing"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	var left []string
	if err := s.List(ctx, "d/", func(info objstore.ObjectInfo) error {
		left = append(left, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("keys left after Delete: %q", left)
	}
	batch := p.requests(func(l string) bool { return strings.HasPrefix(l, "POST") && strings.Contains(l, "delete") })
	if len(batch) != 1 {
		t.Fatalf("DeleteObjects sent %d times (%q); after the first rejection the store must not try again", len(batch), batch)
	}
	single := p.requests(func(l string) bool { return strings.HasPrefix(l, "DELETE") })
	if len(single) != 4 {
		t.Fatalf("DeleteObject sent %d times, want 4 (one per key)", len(single))
	}
}

func TestMultipartAboveThreshold(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv.Endpoint, nil)
	const part = 5 << 20
	s := viaProxy(t, srv, p, func(c *s3store.Config) { c.PartSize = part })
	ctx := t.Context()
	small := bytes.Repeat([]byte("s"), part) // exactly PartSize: one PutObject
	if err := s.Put(ctx, "mp/small", bytes.NewReader(small), int64(len(small))); err != nil {
		t.Fatal(err)
	}
	if n := len(p.requests(func(l string) bool { return strings.Contains(l, "uploads") })); n != 0 {
		t.Fatalf("a PartSize object started %d multipart uploads", n)
	}
	big := make([]byte, 2*part+1)
	for i := range big {
		big[i] = byte(i / part) // each part distinct
	}
	if err := s.Put(ctx, "mp/big", bytes.NewReader(big), int64(len(big))); err != nil {
		t.Fatal(err)
	}
	parts := p.requests(func(l string) bool { return strings.HasPrefix(l, "PUT") && strings.Contains(l, "partNumber=") })
	if len(parts) != 3 {
		t.Fatalf("UploadPart sent %d times, want 3", len(parts))
	}
	if got := getString(t, s, "mp/big"); got != string(big) {
		t.Fatal("multipart object reads back different")
	}
}

// A multipart Put that fails aborts its upload, so no parts are left
// behind, even when the Put's context is the reason it failed.
func TestFailedMultipartIsAborted(t *testing.T) {
	srv := s3test.Start(t)
	p := newProxy(t, srv.Endpoint, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2" {
			s3Error(w, r, http.StatusBadRequest, "InvalidArgument")
			return true
		}
		return false
	})
	const part = 5 << 20
	s := viaProxy(t, srv, p, func(c *s3store.Config) { c.PartSize = part })
	big := bytes.Repeat([]byte("x"), 3*part)
	if err := s.Put(t.Context(), "mp/fails", bytes.NewReader(big), int64(len(big))); err == nil {
		t.Fatal("Put succeeded although part 2 was rejected")
	}
	aborts := p.requests(func(l string) bool { return strings.HasPrefix(l, "DELETE") && strings.Contains(l, "uploadId=") })
	if len(aborts) != 1 {
		t.Fatalf("AbortMultipartUpload sent %d times, want 1", len(aborts))
	}
	out, err := s.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left in the bucket", len(out.Uploads))
	}
	if _, err := s.Head(t.Context(), "mp/fails"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head after the failed Put: %v, want ErrNotFound", err)
	}
}

// A server that ignores Range still yields exactly the requested bytes.
func TestRangeIgnoredByServer(t *testing.T) {
	srv := s3test.Start(t)
	const obj = "0123456789"
	p := newProxy(t, srv.Endpoint, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || r.Header.Get("Range") == "" {
			return false
		}
		// Range is signed, so it cannot be dropped on the way to the real
		// server: answer as a Range-ignoring server would, whole object.
		w.Header().Set("Content-Length", fmt.Sprint(len(obj)))
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, obj)
		return true
	})
	s := viaProxy(t, srv, p, nil)
	if err := putString(t.Context(), s, "r", obj); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		off, n int64
		want   string
	}{{2, 3, "234"}, {7, -1, "789"}, {0, 4, "0123"}} {
		rc, err := s.Get(t.Context(), "r", tc.off, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != tc.want {
			t.Fatalf("Get(%d, %d) = %q, %v; want %q", tc.off, tc.n, b, err, tc.want)
		}
	}
}

func TestMissingBucketIsNotNotFound(t *testing.T) {
	srv := s3test.Start(t)
	s, err := s3store.New(t.Context(), s3store.Config{Bucket: "no-such-bucket", S3Options: srv.Options()})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "k", 0, -1)
	if rc != nil {
		rc.Close()
	}
	if err == nil || errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get from a missing bucket: %v; want an error that is not ErrNotFound", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  s3store.Config
	}{
		{"no bucket", s3store.Config{}},
		{"endpoint without scheme", s3store.Config{Bucket: "b", S3Options: objstore.S3Options{Endpoint: "localhost:9000"}}},
		{"endpoint with other scheme", s3store.Config{Bucket: "b", S3Options: objstore.S3Options{Endpoint: "ftp://x"}}},
		{"access key only", s3store.Config{Bucket: "b", S3Options: objstore.S3Options{AccessKey: "a"}}},
		{"part size below S3 minimum", s3store.Config{Bucket: "b", PartSize: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s3store.New(t.Context(), tc.cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}
