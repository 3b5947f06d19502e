package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/tiering/objstore"
)

// Defaults of a started Server.
const (
	DefaultBucket    = "strata-test"
	DefaultPrefix    = "strata"
	DefaultAccessKey = "strata-test-access"
	DefaultSecretKey = "strata-test-secret-key"
	Region           = "us-east-1"
	// startTimeout bounds how long Start waits for the server to answer.
	startTimeout = 30 * time.Second
)

// Server is a running (or stopped) versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Bucket    string
	Prefix    string // used by URL; stores may use any prefix
	AccessKey string
	SecretKey string
	Dir       string // root served by the posix backend; the bucket is Dir/Bucket

	tb   testing.TB
	bin  string
	addr string

	mu     sync.Mutex
	cmd    *exec.Cmd     // nil while stopped
	exited chan struct{} // closed when cmd has been reaped
}

// Start starts versitygw for the test and stops it at t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		msg := fmt.Sprintf("s3test: versitygw not found (%v); `make deps-test` installs it", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s := &Server{
		Bucket:    DefaultBucket,
		Prefix:    DefaultPrefix,
		AccessKey: DefaultAccessKey,
		SecretKey: DefaultSecretKey,
		Dir:       t.TempDir(),
		tb:        t,
		bin:       bin,
	}
	if err := os.Mkdir(s.BucketDir(), 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(s.Stop)
	// A free port can be taken by someone else between our probe and
	// versitygw's bind; try a few.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Endpoint = "http://" + s.addr
		err = s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("s3test: %v", err)
		}
		t.Logf("s3test: retrying on another port: %v", err)
	}
}

// URL is the object-store URL of the server's bucket and Prefix, for
// tiering.Open and Strata's --object-store flag (with Options).
func (s *Server) URL() string {
	if s.Prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + s.Prefix
}

// Options are the S3 options that reach this server.
func (s *Server) Options() objstore.S3Options {
	return objstore.S3Options{
		Endpoint:  s.Endpoint,
		Region:    Region,
		PathStyle: true,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

// BucketDir is the directory holding the bucket's objects: key k is the file
// BucketDir()/k.
func (s *Server) BucketDir() string { return filepath.Join(s.Dir, s.Bucket) }

// Stop kills the server (as a crash would) and waits for it to exit. It is
// a no-op when the server is not running.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Start restarts a stopped server on the same address and directory; the
// bucket's objects are still there. It fails the test if the server does
// not come up.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("s3test: %v", err)
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(s.bin, "--port", s.addr, "--quiet", "posix", s.Dir)
	cmd.Env = append(cleanEnv(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	out := &lockedWriter{w: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = out, out
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	if err := s.waitReady(exited); err != nil {
		s.stopLocked()
		return fmt.Errorf("versitygw on %s: %w; output:\n%s", s.addr, err, out.String())
	}
	return nil
}

// waitReady polls until the server answers HTTP. Any answer counts (an
// unsigned request gets 403): it proves the S3 API is being served.
func (s *Server) waitReady(exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited during startup")
		case <-ctx.Done():
			return fmt.Errorf("not answering after %v", startTimeout)
		case <-tick.C:
		}
	}
}

// cleanEnv drops variables versitygw reads for its configuration, so the
// developer's environment cannot change the test server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VGW_") || strings.HasPrefix(name, "ROOT_") ||
			name == "LOGFILE" || name == "WEBHOOK" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// findBinary looks for versitygw on PATH, then where `go install` puts it.
func findBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for gp := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			if gp != "" {
				tried = append(tried, filepath.Join(gp, "bin", "versitygw"))
			}
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		tried = append(tried, filepath.Join(home, "go", "bin", "versitygw"))
	}
	for _, p := range tried {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not on PATH nor in %s", strings.Join(tried, ", "))
}

// lockedWriter collects a process's output; the exec package copies stdout
// and stderr from goroutines of its own.
type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	const limit = 64 << 10 // keep the start: that is where startup errors are
	if room := limit - l.w.Len(); room < len(p) {
		if room > 0 {
			l.w.Write(p[:room])
		}
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}
