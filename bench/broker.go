package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerProcess is one bin/strata started by the bench as a real process
// on a free loopback port with a data dir of its own.
type brokerProcess struct {
	cmd      *exec.Cmd
	addr     string
	dataDir  string
	keepData bool // the data dir outlives this process (a restart follows)
	stderr   *tailBuffer
	admin    *adminSniffer
	exited   chan struct{} // closed once the process has been waited for
	waitErr  error         // valid after exited is closed
}

// brokerSpec says how to start a broker beyond the defaults.
type brokerSpec struct {
	Bin      string
	DataRoot string // a fresh data dir is made here when DataDir is empty
	// DataDir, when set, is used as is and kept when the process stops,
	// so that a second process can start on the same data.
	DataDir string
	Flags   []string // extra command-line flags, e.g. --object-store URL
	Sets    []string // extra `--set key=value` settings
	Ready   time.Duration
	// NodeID is --node-id; 0 means 1, the id of a single-node broker.
	NodeID int32
	// Addr is the Kafka listener; empty picks a free loopback port. A
	// cluster member restarted after a kill needs its old address back,
	// since the others (and the bench's clients) know it by that.
	Addr string
}

// startBroker starts bin and waits until it answers a Kafka request.
// extra are additional `--set key=value` settings. The returned process
// must be stopped with stop.
func startBroker(ctx context.Context, log *slog.Logger, bin, dataRoot string, extra []string, readyTimeout time.Duration) (*brokerProcess, error) {
	return startBrokerSpec(ctx, log, brokerSpec{Bin: bin, DataRoot: dataRoot, Sets: extra, Ready: readyTimeout})
}

// startBrokerSpec starts a broker as spec says and waits until it answers
// a Kafka request.
func startBrokerSpec(ctx context.Context, log *slog.Logger, spec brokerSpec) (*brokerProcess, error) {
	bin := spec.Bin
	addr := spec.Addr
	if addr == "" {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	dataDir, keep := spec.DataDir, spec.DataDir != ""
	if !keep {
		var err error
		if dataDir, err = os.MkdirTemp(spec.DataRoot, "strata-bench-data-*"); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
	}
	nodeID := spec.NodeID
	if nodeID == 0 {
		nodeID = 1
	}
	args := []string{"serve", "--node-id", strconv.Itoa(int(nodeID)), "--data-dir", dataDir, "--listen", addr, "--admin-listen", "127.0.0.1:0"}
	args = append(args, spec.Flags...)
	for _, kv := range spec.Sets {
		args = append(args, "--set", kv)
	}
	// Not CommandContext: the process is stopped with SIGTERM by stop,
	// so its clean shutdown is part of what the bench exercises.
	cmd := exec.Command(bin, args...)
	// If the bench dies without stopping it, the broker goes too rather
	// than holding the port and the data dir.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := &brokerProcess{cmd: cmd, addr: addr, dataDir: dataDir, keepData: keep, stderr: newTailBuffer(64 << 10),
		admin: newAdminSniffer(), exited: make(chan struct{})}
	out := io.MultiWriter(p.stderr, p.admin)
	cmd.Stdout = out
	cmd.Stderr = out
	log.Info("starting broker", "bin", bin, "args", redactArgs(args))
	if err := cmd.Start(); err != nil {
		if !keep {
			os.RemoveAll(dataDir)
		}
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	start := time.Now()
	if err := p.waitReady(ctx, spec.Ready); err != nil {
		p.stop(log, 10*time.Second)
		return nil, fmt.Errorf("broker %s not ready: %w\nbroker output (last lines):\n%s", addr, err, p.stderr.LastLines(brokerOutputLines))
	}
	log.Info("broker ready", "addr", addr, "after", time.Since(start).Round(time.Millisecond))
	return p, nil
}

// redactArgs hides secret values in a command line that is logged.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if k, _, ok := strings.Cut(a, "="); ok && strings.Contains(k, "secret") {
			a = k + "=***"
		}
		out[i] = a
	}
	return out
}

// waitReady polls with a Kafka client until the broker answers a
// Metadata request, the process exits, or timeout passes.
func (p *brokerProcess) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.RetryTimeout(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	// Each attempt is bounded so that a process exit is noticed quickly;
	// the back-off between attempts is the client's own dial retry.
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		err := cl.Ping(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("process exited: %v", p.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		default:
		}
		// Ping fails at once while nothing listens; wait for either a
		// short tick or the process ending instead of spinning.
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-p.exited:
		case <-ctx.Done():
		}
		t.Stop()
	}
}

// stop sends SIGTERM, waits up to grace for a clean exit, then kills,
// removes the data dir (unless it was given to the process), and reports how long the shutdown took and how
// the process ended.
func (p *brokerProcess) stop(log *slog.Logger, grace time.Duration) (ShutdownInfo, error) {
	if !p.keepData {
		defer os.RemoveAll(p.dataDir)
	}
	start := time.Now()
	info := ShutdownInfo{}
	select {
	case <-p.exited:
		info.Elapsed = 0
		info.Clean = false
		info.Exit = fmt.Sprint(p.waitErr)
		return info, fmt.Errorf("broker exited before it was stopped: %v", p.waitErr)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		log.Warn("SIGTERM failed", "err", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
		info.Elapsed = time.Since(start)
		info.Clean = p.waitErr == nil
		info.Exit = exitString(p.waitErr)
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.exited
		info.Elapsed = time.Since(start)
		info.Exit = "killed after " + grace.String()
	}
	log.Info("broker stopped", "after", info.Elapsed.Round(time.Millisecond), "exit", info.Exit)
	return info, nil
}

// kill sends SIGKILL, as a crashed machine would end the broker (no
// controlled shutdown, nothing flushed), and returns once the process has
// been reaped. The data dir is left alone: a kill is followed by a restart
// on the same data. The returned time is when the signal was sent.
func (p *brokerProcess) kill() (time.Time, error) {
	at := time.Now()
	if err := p.cmd.Process.Kill(); err != nil {
		return at, err
	}
	<-p.exited
	return at, nil
}

// cpu is the CPU time the process used; valid once it has exited.
func (p *brokerProcess) cpu() time.Duration {
	select {
	case <-p.exited:
		return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime()
	default:
		return 0
	}
}

// ShutdownInfo is how a broker started by the bench ended on SIGTERM.
type ShutdownInfo struct {
	Elapsed time.Duration `json:"elapsed_ns"`
	Clean   bool          `json:"clean"`
	Exit    string        `json:"exit"`
}

func exitString(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ensureBrokerBinary builds ./cmd/strata into bin when bin does not exist
// and build is allowed (the default path, run from the repository root).
func ensureBrokerBinary(ctx context.Context, log *slog.Logger, bin string, build bool) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) || !build {
		return fmt.Errorf("broker binary %s: %w", bin, err)
	}
	log.Info("building broker", "out", bin)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/strata")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build -o %s ./cmd/strata: %w\n%s", bin, err, out)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it, so a broker that
// logs a lot cannot grow the bench's memory, and a failure can still show
// what the broker said last.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

// brokerOutputLines is how much of a failing broker's output an error
// quotes: enough for its last complaints, not a screenful of a loop.
const brokerOutputLines = 20

// LastLines returns at most the last n lines of the kept output.
func (t *tailBuffer) LastLines(n int) string {
	s := strings.TrimSuffix(t.String(), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// String returns the kept output, starting at a line boundary.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) == t.max {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(b)
}

// adminSniffer watches the broker's log output for the line naming the
// admin listener's bound address (the bench asks for port 0, so the log is
// the only place it appears), keeping at most one partial line.
type adminSniffer struct {
	mu    sync.Mutex
	line  []byte
	addr  string
	found chan struct{}
}

func newAdminSniffer() *adminSniffer { return &adminSniffer{found: make(chan struct{})} }

func (a *adminSniffer) Write(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.addr != "" {
		return len(b), nil
	}
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			if len(a.line) < 4096 { // a longer line is not the one we want
				a.line = append(a.line, rest...)
			}
			break
		}
		a.line = append(a.line, rest[:i]...)
		rest = rest[i+1:]
		if addr, ok := parseAdminAddr(string(a.line)); ok {
			a.addr = addr
			a.line = nil
			close(a.found)
			break
		}
		a.line = a.line[:0]
	}
	return len(b), nil
}

// wait returns the admin address once the broker has logged it.
func (a *adminSniffer) wait(ctx context.Context) (string, error) {
	select {
	case <-a.found:
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.addr, nil
	case <-ctx.Done():
		return "", fmt.Errorf("broker did not log its admin listener address: %w", ctx.Err())
	}
}

// parseAdminAddr recognises the broker's `msg="admin listener" addr=H:P`
// log line (text format) and returns H:P.
func parseAdminAddr(line string) (string, bool) {
	if !strings.Contains(line, `msg="admin listener"`) {
		return "", false
	}
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "addr="); ok && v != "" {
			if _, _, err := net.SplitHostPort(v); err == nil {
				return v, true
			}
		}
	}
	return "", false
}
