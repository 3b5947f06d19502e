package raftlog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		level hclog.Level
		msg   string
		want  slog.Level
	}{
		{hclog.Trace, "anything", LevelTrace},
		{hclog.Debug, "anything", slog.LevelDebug},
		{hclog.Info, "compacting logs", slog.LevelDebug},
		{hclog.Info, "entering leader state", slog.LevelInfo},
		{hclog.Info, "entering follower state", slog.LevelInfo},
		{hclog.NoLevel, "starting node", slog.LevelDebug},
		{hclog.Warn, "failed to contact quorum of nodes, stepping down", slog.LevelWarn},
		{hclog.Warn, "heartbeat timeout reached, starting election", slog.LevelInfo},
		{hclog.Error, "failed to appendEntries to", slog.LevelError},
	}
	for _, tc := range tests {
		if got := Level(tc.level, tc.msg); got != tc.want {
			t.Errorf("Level(%v, %q) = %v, want %v", tc.level, tc.msg, got, tc.want)
		}
	}
}

type stringer struct{ s string }

func (s *stringer) String() string { return s.s } // panics on a nil *stringer

// capture logs through the adapter into JSON lines.
func capture(t *testing.T, level slog.Level, fn func(l *Logger)) []map[string]any {
	t.Helper()
	var buf bytes.Buffer
	fn(New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))))
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestAttributes(t *testing.T) {
	var nilStringer *stringer
	recs := capture(t, slog.LevelDebug, func(l *Logger) {
		l.Named("raft").Named("net").With("node", 1).Warn("msg",
			"raft", &stringer{"Node at x [Leader]"},
			"err", errors.New("boom"),
			"fmt", hclog.Fmt("%d-%s", 7, "x"),
			"hex", hclog.Hex(255),
			"nil", nilStringer,
			42, "non-string key",
			"dangling")
	})
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	want := map[string]any{
		"level": "WARN", "msg": "msg", "logger": "raft.net", "node": float64(1),
		"raft": "Node at x [Leader]", "err": "boom", "fmt": "7-x", "hex": "0xff",
		"nil": "<nil>", "42": "non-string key", "EXTRA_VALUE_AT_END": "dangling",
	}
	for k, v := range want {
		if fmt.Sprint(r[k]) != fmt.Sprint(v) {
			t.Errorf("%s = %v, want %v (record %v)", k, r[k], v, r)
		}
	}
}

func TestFiltering(t *testing.T) {
	recs := capture(t, slog.LevelInfo, func(l *Logger) {
		l.Info("compacting logs")
		l.Info("entering leader state")
		l.Debug("debug")
		l.Trace("trace")
		l.Error("failed to decode incoming command", "error", &net.OpError{Op: "read", Err: net.ErrClosed})
		l.Error("real trouble", "error", errors.New("disk full"))
		l.Log(hclog.Off, "never")
		if l.IsDebug() || l.IsTrace() || !l.IsWarn() || l.GetLevel() != hclog.Warn {
			t.Errorf("level guards: debug=%v trace=%v warn=%v level=%v", l.IsDebug(), l.IsTrace(), l.IsWarn(), l.GetLevel())
		}
	})
	var msgs []string
	for _, r := range recs {
		msgs = append(msgs, r["msg"].(string))
	}
	if got := strings.Join(msgs, "|"); got != "entering leader state|real trouble" {
		t.Errorf("emitted %q", got)
	}
}

func TestStandardWriter(t *testing.T) {
	recs := capture(t, slog.LevelDebug, func(l *Logger) {
		l.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}).Print("[ERR] broken\n[DEBUG] fine")
		fmt.Fprintln(l.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}), "forced")
	})
	if len(recs) != 3 {
		t.Fatalf("%d records: %v", len(recs), recs)
	}
	for i, want := range []string{"ERROR broken", "DEBUG fine", "WARN forced"} {
		if got := fmt.Sprint(recs[i]["level"], " ", recs[i]["msg"]); got != want {
			t.Errorf("record %d = %q, want %q", i, got, want)
		}
	}
}

func TestNilLogger(t *testing.T) {
	l := New(nil)
	l.Error("discarded")
	if l.IsError() {
		t.Error("a nil slog logger should discard everything")
	}
	if l.ResetNamed("x").Name() != "x" || len(l.With("a", 1).ImpliedArgs()) != 2 {
		t.Error("ResetNamed/With do not keep their arguments")
	}
}
