package e2e

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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Set by TestMain.
var (
	strataBin string // path of the binary under test
	buildErr  error  // why it could not be built
)

// buildVersion is stamped into the binary TestMain builds.
const buildVersion = "e2e-test"

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin := os.Getenv("E2E_STRATA_BIN"); bin != "" {
		strataBin = bin
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		buildErr = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	strataBin = filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+buildVersion,
		"-o", strataBin, "github.com/strata-broker/strata/cmd/strata")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/strata: %v\n%s", err, out)
	}
	return m.Run()
}

// inCI is true under CI (CI=true), where a missing prerequisite is a
// failure, not a reason to skip.
func inCI() bool { return os.Getenv("CI") == "true" }

func requireBinary(t *testing.T) {
	t.Helper()
	if buildErr == nil {
		return
	}
	if inCI() {
		t.Fatalf("cannot build strata: %v", buildErr)
	}
	t.Skipf("cannot build strata: %v", buildErr)
}

// testContext is the hard deadline of one test.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fastArgs keep group tests quick without changing what they test.
var fastArgs = []string{"--set", "group.initial.rebalance.delay.ms=0", "--admin-listen=127.0.0.1:0"}

// brokerProc is one strata process; it can be killed and restarted on the
// same data directory and port.
type brokerProc struct {
	t       *testing.T
	DataDir string
	Addr    string // 127.0.0.1:port
	args    []string
	logPath string

	// readyHTTP, when set, is the admin listener; readiness is then its
	// /readyz rather than a PLAINTEXT Kafka connection, for brokers whose
	// listeners all want TLS or SASL.
	readyHTTP string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
	waitErr error
	starts  int
}

// startBroker starts strata with its own data dir and port, plus extra
// serve arguments, and waits until it serves Kafka requests.
func startBroker(t *testing.T, extra ...string) *brokerProc {
	t.Helper()
	return startBrokerWith(t, brokerOptions{}, extra...)
}

// brokerOptions are the less common ways to start a broker.
type brokerOptions struct {
	// Addr is the Kafka address passed as --listen; "" picks a free
	// port. Tests with --listeners set it to their PLAINTEXT listener.
	Addr string
	// AdminAddr, when set, is passed as --admin-listen and readiness is
	// polled on its /readyz instead of over a PLAINTEXT connection.
	AdminAddr string
}

// startBrokerWith is startBroker with options.
func startBrokerWith(t *testing.T, o brokerOptions, extra ...string) *brokerProc {
	t.Helper()
	requireBinary(t)
	keep := os.Getenv("E2E_KEEP") != ""
	base := t.TempDir()
	if keep {
		var err error
		if base, err = os.MkdirTemp("", "strata-e2e-"+sanitize(t.Name())+"-"); err != nil {
			t.Fatal(err)
		}
	}
	b := &brokerProc{
		t:       t,
		DataDir: filepath.Join(base, "data"),
		Addr:    o.Addr,
		args:    append(append([]string{}, fastArgs...), extra...),
		logPath: filepath.Join(base, "strata.log"),
	}
	if b.Addr == "" {
		b.Addr = freeAddr(t)
	}
	if o.AdminAddr != "" {
		// After fastArgs' --admin-listen, so this one wins.
		b.args = append(b.args, "--admin-listen="+o.AdminAddr)
		b.readyHTTP = o.AdminAddr
	}
	t.Cleanup(func() {
		b.stopQuietly()
		if t.Failed() {
			t.Logf("broker log (%s):\n%s", b.logPath, tail(b.logPath, 48<<10))
		}
		if keep {
			t.Logf("kept %s", base)
		}
	})
	b.Start()
	return b
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, s)
}

// freeAddr finds a free loopback port. The broker binds it moments later;
// nothing else on this machine races for ephemeral ports in practice.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Start launches the process (again) and waits until it is ready.
func (b *brokerProc) Start() {
	b.t.Helper()
	b.launch()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b.WaitReady(ctx)
}

func (b *brokerProc) launch() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.starts++
	args := append([]string{"serve",
		"--node-id=1",
		"--data-dir=" + b.DataDir,
		"--listen=" + b.Addr,
	}, b.args...)
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== e2e: start #%d: %s %s\n", b.starts, strataBin, strings.Join(args, " "))
	cmd := exec.Command(strataBin, args...)
	cmd.Env = brokerEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, the broker dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		b.t.Fatalf("start strata: %v", err)
	}
	done := make(chan struct{})
	b.cmd, b.done, b.waitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		logf.Close()
		b.mu.Lock()
		b.waitErr = err
		b.mu.Unlock()
		close(done)
	}()
}

// brokerEnv is the test's environment without STRATA_* variables, so a
// developer's shell cannot change what the tests run.
func brokerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STRATA_") {
			env = append(env, kv)
		}
	}
	return env
}

// WaitReady polls ApiVersions and Metadata until the broker answers both
// and lists itself, failing at once if the process exits.
func (b *brokerProc) WaitReady(ctx context.Context) {
	b.t.Helper()
	if b.readyHTTP != "" {
		b.waitReadyz(ctx)
		return
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.DialTimeout(time.Second), kgo.RequestRetries(0),
		kgo.RetryTimeout(time.Second))
	if err != nil {
		b.t.Fatal(err)
	}
	defer cl.Close()
	var last error
	for {
		select {
		case <-b.exited():
			b.t.Fatalf("strata exited while starting: %v", b.exitErr())
		default:
		}
		last = b.probe(ctx, cl)
		if last == nil {
			return
		}
		select {
		case <-ctx.Done():
			b.t.Fatalf("strata not ready on %s: %v", b.Addr, last)
		case <-b.exited():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitReadyz polls the admin listener's /readyz until it answers 200.
func (b *brokerProc) waitReadyz(ctx context.Context) {
	b.t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + b.readyHTTP + "/readyz"
	var last error
	for {
		select {
		case <-b.exited():
			b.t.Fatalf("strata exited while starting: %v", b.exitErr())
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			b.t.Fatalf("strata not ready on %s: %v", b.readyHTTP, last)
		case <-b.exited():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *brokerProc) probe(ctx context.Context, cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	av, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if av.ErrorCode != 0 || len(av.ApiKeys) == 0 {
		return fmt.Errorf("ApiVersions: error %d, %d keys", av.ErrorCode, len(av.ApiKeys))
	}
	md := kmsg.NewPtrMetadataRequest()
	md.Topics = []kmsg.MetadataRequestTopic{} // none, only brokers
	resp, err := md.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	if len(resp.Brokers) == 0 {
		return errors.New("Metadata lists no broker yet")
	}
	return nil
}

func (b *brokerProc) exited() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

func (b *brokerProc) exitErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waitErr
}

func (b *brokerProc) pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to be gone.
func (b *brokerProc) Kill() {
	b.t.Helper()
	b.signal(syscall.SIGKILL)
	<-b.exited()
}

// Restart starts the process again on the same data dir and port.
func (b *brokerProc) Restart() {
	b.t.Helper()
	select {
	case <-b.exited():
	default:
		b.t.Fatal("Restart while the broker is running")
	}
	b.Start()
}

func (b *brokerProc) signal(sig syscall.Signal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.cmd.Process.Signal(sig)
}

// Terminate sends SIGTERM and waits up to limit for the exit; it returns
// the exit code and how long the shutdown took.
func (b *brokerProc) Terminate(limit time.Duration) (code int, took time.Duration) {
	b.t.Helper()
	start := time.Now()
	b.signal(syscall.SIGTERM)
	select {
	case <-b.exited():
	case <-time.After(limit):
		b.Kill()
		b.t.Fatalf("strata did not exit within %v of SIGTERM", limit)
	}
	took = time.Since(start)
	var ee *exec.ExitError
	if err := b.exitErr(); errors.As(err, &ee) {
		return ee.ExitCode(), took
	} else if err != nil {
		b.t.Fatal(err)
	}
	return 0, took
}

// stopQuietly ends the process at cleanup: SIGTERM, then SIGKILL.
func (b *brokerProc) stopQuietly() {
	b.mu.Lock()
	started := b.cmd != nil
	b.mu.Unlock()
	if !started {
		return
	}
	select {
	case <-b.exited():
		return
	default:
	}
	b.signal(syscall.SIGTERM)
	select {
	case <-b.exited():
	case <-time.After(15 * time.Second):
		b.signal(syscall.SIGKILL)
		<-b.exited()
	}
}

// Log returns the broker's log so far.
func (b *brokerProc) Log() string {
	data, _ := os.ReadFile(b.logPath)
	return string(data)
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[len(data)-n:]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			data = data[i+1:]
		}
		return "...\n" + string(data)
	}
	return string(data)
}

// Client returns a franz-go client for this broker, closed at cleanup.
func (b *brokerProc) Client(opts ...kgo.Opt) *kgo.Client {
	b.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, opts...)...)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(cl.Close)
	return cl
}

// Admin returns a kadm client for this broker, closed at cleanup. kgo
// caches metadata for MetadataMinAge (5 s by default), which would hide
// topic changes from the tests for that long.
func (b *brokerProc) Admin() *kadm.Client {
	b.t.Helper()
	return kadm.NewClient(b.Client(kgo.MetadataMinAge(10 * time.Millisecond)))
}

// waitFor polls cond until it reports true or ctx ends; the failure names
// what was awaited and cond's last explanation.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, why := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s: %s", what, why)
		case <-time.After(25 * time.Millisecond):
		}
	}
}
