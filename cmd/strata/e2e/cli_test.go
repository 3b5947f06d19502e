package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runStrata runs the binary to completion (it must exit within 15 s) and
// returns its exit code, stdout and stderr.
func runStrata(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	requireBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, strataBin, args...)
	cmd.Env = append(brokerEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("strata %v still running after 15 s; stderr:\n%s", args, stderr.String())
	}
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	aFile := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(aFile, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "strata.yaml")
	if err := os.WriteFile(cfgFile, []byte("num.partitions: 3\nlog:\n  retention.weeks: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Each case would otherwise start a broker: give it somewhere harmless.
	base := func() []string {
		return []string{"serve", "--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0", "--data-dir=" + filepath.Join(t.TempDir(), "data")}
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string // in stderr
	}{
		{name: "not a number", args: []string{"--set", "num.partitions=abc"}, want: []string{"num.partitions", "abc"}},
		{name: "out of range", args: []string{"--set", "num.partitions=0"}, want: []string{"num.partitions"}},
		{name: "unknown --set key", args: []string{"--set", "num.partitionz=3"}, want: []string{"num.partitionz"}},
		{name: "unknown file key", args: []string{"--config", cfgFile}, want: []string{"log.retention.weeks", cfgFile}},
		{name: "bad env value", env: []string{"STRATA_LOG_SEGMENT_BYTES=big"}, want: []string{"log.segment.bytes", "STRATA_LOG_SEGMENT_BYTES"}},
		{name: "bad listen", args: []string{"--listen", "nowhere"}, want: []string{"listen"}},
		{name: "data dir is a file", args: []string{"--data-dir", aFile}, want: []string{aFile}},
		{name: "data dir under a file", args: []string{"--data-dir", filepath.Join(aFile, "data")}, want: []string{aFile}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runStrata(t, tc.env, append(base(), tc.args...)...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not name %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runStrata(t, nil, "version")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The version stamped at build time (TestMain's, or make's) and Go's.
	want := runtime.Version()
	if os.Getenv("E2E_STRATA_BIN") == "" {
		want = buildVersion + " (" + want
	}
	if !strings.HasPrefix(stdout, "strata ") || !strings.Contains(stdout, want) {
		t.Errorf("strata version printed %q, want it to contain %q", stdout, want)
	}
	if code, _, _ := runStrata(t, nil, "no-such-command"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

// TestSIGTERM: a clean shutdown within 10 s, exit code 0, and everything
// acknowledged or committed is there after a restart.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ctx := testContext(t, 2*time.Minute)
	adm := b.Admin()
	createTopic(ctx, t, adm, "term", 2, nil)
	want := makeRecords("term", 100, 2, 7)
	kgoClient{b}.produce(ctx, t, "term", "zstd", want)
	var commit kadm.Offsets
	commit.AddOffset("term", 0, 17, -1)
	commit.AddOffset("term", 1, 33, -1)
	if err := adm.CommitAllOffsets(ctx, "term-group", commit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	// Connections open at shutdown must not hold it up.
	idle := b.Client()
	if err := idle.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	code, took := b.Terminate(10 * time.Second)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	t.Logf("shutdown took %v", took)
	if log := b.Log(); strings.Contains(log, "panic") || strings.Contains(log, "DATA RACE") {
		t.Errorf("broker log has a panic or race")
	}

	b.Restart()
	adm = b.Admin()
	resps, err := adm.FetchOffsets(ctx, "term-group")
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range map[int32]int64{0: 17, 1: 33} {
		if o, ok := resps.Lookup("term", p); !ok || o.Err != nil || o.At != w {
			t.Errorf("committed term/%d after restart: %+v, want %d", p, o, w)
		}
	}
	got := readAll(ctx, t, b, "term", 2, len(want))
	samePerPartition(t, "after SIGTERM and restart", want, got)
}

// readAll reads n records from the start of every partition of topic.
func readAll(ctx context.Context, t *testing.T, b *brokerProc, topic string, partitions int32, n int) []rec {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p := range partitions {
		offs[p] = kgo.NewOffset().AtStart()
	}
	cl := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	var got []rec
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(got), n, topic, ctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got = append(got, fromKgo(r)) })
	}
	if len(got) != n {
		t.Errorf("read %d records of %s, want %d", len(got), topic, n)
	}
	return got
}
