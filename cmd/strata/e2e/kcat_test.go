package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kcatFormat prints what the tests compare; '|' never occurs in the
// records kcat tests write.
const kcatFormat = `%p|%o|%k|%s|%h\n`

// kcatClient drives librdkafka through kcat, as Debian ships it.
type kcatClient struct{ b *brokerProc }

func requireKcat(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err == nil {
		return path
	}
	if inCI() {
		t.Fatal("kcat is not installed (make deps-test installs it)")
	}
	t.Skip("kcat is not installed: run make deps-test (apt-get install kcat)")
	return ""
}

// makeRecords: kcat reads records as lines, so keys and values are text
// without '|' or newlines, and every record of one kcat run carries the
// same header.
func (kcatClient) makeRecords(name string, n int, partitions int32, seed uint64) []rec {
	rng := rand.New(rand.NewPCG(seed, 0xca7))
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;-_"
	out := make([]rec, n)
	for i := range out {
		size := 1 + rng.IntN(300)
		if i == n/2 {
			size = 64 << 10
		}
		v := make([]byte, size)
		for j := range v {
			v[j] = letters[rng.IntN(len(letters))]
		}
		out[i] = rec{
			Partition: int32(i) % partitions,
			Key:       fmt.Appendf(nil, "%s-k%04d", name, i),
			Value:     fmt.Appendf(v[:0:0], "%s-%d:%s", name, i, v),
			Headers:   []header{{Key: "src", Value: []byte("kcat")}},
		}
	}
	return out
}

func (c kcatClient) createTopic(ctx context.Context, t *testing.T, topic string, partitions int32) {
	createTopic(ctx, t, c.b.Admin(), topic, partitions, nil)
}

func (c kcatClient) produce(ctx context.Context, t *testing.T, topic, codec string, rs []rec) {
	t.Helper()
	kcat := requireKcat(t)
	before := endOffsets(ctx, t, c.b.Admin(), topic)
	for p, prs := range byPartition(rs) {
		var in bytes.Buffer
		for _, r := range prs {
			fmt.Fprintf(&in, "%s|%s\n", r.Key, r.Value)
		}
		cmd := exec.CommandContext(ctx, kcat, "-b", c.b.Addr, "-P", "-t", topic, "-p", strconv.Itoa(int(p)),
			"-z", codec, "-K", "|", "-H", "src=kcat",
			"-X", "acks=all", "-X", "enable.idempotence=true", "-X", "client.id=e2e-kcat-producer")
		cmd.Stdin = &in
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("kcat produce (%s) to partition %d: %v\n%s", codec, p, err, out)
		}
	}
	after := endOffsets(ctx, t, c.b.Admin(), topic)
	for p, n := range countPerPartition(rs) {
		if after[p]-before[p] != n {
			t.Fatalf("kcat produce (%s): partition %d grew by %d records, want %d", codec, p, after[p]-before[p], n)
		}
	}
}

// parseKcatLine reads one line printed with kcatFormat.
func parseKcatLine(line string) (rec, int64, error) {
	f := strings.SplitN(line, "|", 5)
	if len(f) != 5 {
		return rec{}, 0, fmt.Errorf("kcat line %q: want 5 fields", line)
	}
	p, err1 := strconv.ParseInt(f[0], 10, 32)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return rec{}, 0, fmt.Errorf("kcat line %q: bad partition or offset", line)
	}
	r := rec{Partition: int32(p), Key: []byte(f[2]), Value: []byte(f[3])}
	if f[4] != "" {
		for _, kv := range strings.Split(f[4], ",") {
			k, v, _ := strings.Cut(kv, "=")
			r.Headers = append(r.Headers, header{Key: k, Value: []byte(v)})
		}
	}
	return r, off, nil
}

func newLineScanner(r interface{ Read([]byte) (int, error) }) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 4<<20)
	return sc
}

func (c kcatClient) join(ctx context.Context, t *testing.T, name, group, topic string, col *collector) func() {
	kcat := requireKcat(t)
	cmd := exec.Command(kcat, "-b", c.b.Addr, "-G", group, topic, "-u", "-f", kcatFormat,
		"-X", "client.id=e2e-kcat-"+name,
		"-X", "auto.offset.reset=earliest",
		"-X", "auto.commit.interval.ms=100",
		"-X", "heartbeat.interval.ms=250",
		"-X", "session.timeout.ms=10000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("kcat -G: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := newLineScanner(stdout)
		for sc.Scan() {
			r, off, err := parseKcatLine(sc.Text())
			if err != nil {
				t.Errorf("kcat member %s: %v", name, err)
				continue
			}
			col.add(name, off, r)
		}
	}()
	return onceStop(t, func() {
		// kcat leaves the group and commits on SIGTERM.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { wg.Wait(); _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("kcat member %s did not exit on SIGTERM", name)
		}
		if t.Failed() {
			t.Logf("kcat member %s stderr:\n%s", name, stderr.String())
		}
	})
}

func TestKcat(t *testing.T) {
	t.Parallel()
	kcat := requireKcat(t)
	b := startBroker(t)
	c := kcatClient{b}
	all := runGroupScenario(t, b, c, "kcat")

	// A plain consume of the whole topic, exiting at its end.
	ctx := testContext(t, time.Minute)
	out, err := exec.CommandContext(ctx, kcat, "-b", b.Addr, "-C", "-t", "kcat", "-o", "beginning", "-e", "-q",
		"-f", kcatFormat).Output()
	if err != nil {
		t.Fatalf("kcat -C: %v", err)
	}
	var got []rec
	sc := newLineScanner(bytes.NewReader(out))
	for sc.Scan() {
		r, _, err := parseKcatLine(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	samePerPartition(t, "kcat -C", all, got)

	// Metadata as librdkafka sees it.
	md, err := exec.CommandContext(ctx, kcat, "-b", b.Addr, "-L", "-t", "kcat").Output()
	if err != nil {
		t.Fatalf("kcat -L: %v", err)
	}
	if !strings.Contains(string(md), `topic "kcat" with 3 partitions`) {
		t.Errorf("kcat -L output lacks the topic:\n%s", md)
	}
}
