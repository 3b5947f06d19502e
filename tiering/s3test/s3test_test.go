package s3test_test

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/strata-broker/strata/tiering/s3store"
	"github.com/strata-broker/strata/tiering/s3test"
)

func TestStopStartKeepsData(t *testing.T) {
	srv := s3test.Start(t)
	if !strings.HasPrefix(srv.Endpoint, "http://127.0.0.1:") {
		t.Fatalf("Endpoint %q is not on loopback", srv.Endpoint)
	}
	if want := "s3://" + srv.Bucket + "/" + srv.Prefix; srv.URL() != want {
		t.Fatalf("URL() = %q, want %q", srv.URL(), want)
	}
	st, err := s3store.New(t.Context(), s3store.Config{Bucket: srv.Bucket, Prefix: srv.Prefix, S3Options: srv.Options()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(srv.BucketDir(), srv.Prefix, "k")); err != nil || string(b) != "v" {
		t.Fatalf("object file under BucketDir: %q, %v", b, err)
	}

	srv.Stop()
	srv.Stop() // idempotent
	addr := strings.TrimPrefix(srv.Endpoint, "http://")
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("server still accepts connections after Stop")
	}

	srv.Start()
	rc, err := st.Get(t.Context(), "k", 0, -1)
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "v" {
		t.Fatalf("Get after restart = %q", b)
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := s3test.Start(t), s3test.Start(t)
	if a.Endpoint == b.Endpoint || a.Dir == b.Dir {
		t.Fatalf("two servers share %q / %q", a.Endpoint, a.Dir)
	}
	st, err := s3store.New(t.Context(), s3store.Config{Bucket: b.Bucket, S3Options: b.Options()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(t.Context(), "only-in-b", strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(a.BucketDir(), "only-in-b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("object of server b visible in a's directory: %v", err)
	}
}

// recorder stands in for the test when Start cannot find the binary: it
// records Skip or Fatal (the two calls Start makes then) and ends its
// goroutine, as the real ones do.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	skipped string
	fatal   string
}

func (r *recorder) Helper() {}

func (r *recorder) Skip(args ...any) {
	r.mu.Lock()
	r.skipped = sprint(args)
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = sprint(args)
	r.mu.Unlock()
	runtime.Goexit()
}

func sprint(args []any) string {
	var b strings.Builder
	for _, a := range args {
		if s, ok := a.(string); ok {
			b.WriteString(s)
		}
	}
	return b.String()
}

func runStart(tb testing.TB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s3test.Start(tb)
	}()
	<-done
}

func TestMissingBinary(t *testing.T) {
	// Nothing on PATH (so no `go env` either) and an empty home.
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())

	t.Setenv("CI", "")
	r := &recorder{TB: t}
	runStart(r)
	if r.skipped == "" || !strings.Contains(r.skipped, "make deps-test") {
		t.Fatalf("without versitygw and CI: skipped %q, fatal %q; want a skip naming make deps-test", r.skipped, r.fatal)
	}

	t.Setenv("CI", "true")
	r = &recorder{TB: t}
	runStart(r)
	if r.fatal == "" || r.skipped != "" {
		t.Fatalf("without versitygw in CI: skipped %q, fatal %q; want a failure", r.skipped, r.fatal)
	}
}
