// Package raftlog bridges hashicorp's hclog.Logger (what hashicorp/raft logs
// through) onto an injected log/slog.Logger.
//
// Raft is chatty at INFO: every snapshot, compaction and pipeline change is
// logged there. An operator of a Kafka-style broker cares about leadership
// changes, not about log compaction, so INFO is demoted to slog Debug except
// for the handful of messages that say who leads. WARN and ERROR keep their
// level, except the election timeout warning, which is how every single-voter
// start looks and is a leadership event rather than a problem, and errors
// caused by this process closing its own connections (net.ErrClosed), which
// are shutdown noise.
//
// The adapter is stateless apart from its name and implied arguments, so it
// is safe for concurrent use, as hclog requires.
package raftlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// LevelTrace is the slog level hclog's TRACE maps to: below Debug, so a
// handler at Debug does not show it.
const LevelTrace = slog.LevelDebug - 4

// leadership lists raft INFO messages that are kept at slog Info: they tell an
// operator who leads. Everything else raft logs at INFO becomes Debug.
var leadership = map[string]bool{
	"entering leader state":                      true,
	"entering follower state":                    true,
	"removed ourself, transitioning to follower": true,
	"removed ourself, shutting down":             true,
}

// demotedWarnings are raft WARN messages that are normal leadership events.
var demotedWarnings = map[string]bool{
	"heartbeat timeout reached, starting election": true,
}

// Level maps an hclog level and message to the slog level they are logged at.
func Level(l hclog.Level, msg string) slog.Level {
	switch l {
	case hclog.Trace:
		return LevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		if demotedWarnings[msg] {
			return slog.LevelInfo
		}
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default: // Info, NoLevel
		if leadership[msg] {
			return slog.LevelInfo
		}
		return slog.LevelDebug
	}
}

// Logger implements hclog.Logger on top of a slog.Logger.
type Logger struct {
	l       *slog.Logger
	name    string
	implied []any
}

var _ hclog.Logger = (*Logger)(nil)

// New returns an hclog.Logger writing to l (a nil l discards everything).
func New(l *slog.Logger) *Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Logger{l: l}
}

// Log emits msg at the slog level Level(level, msg) picks.
func (a *Logger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Off {
		return
	}
	lvl := Level(level, msg)
	if lvl > slog.LevelDebug && closedConn(args) {
		// "use of closed network connection" only happens after this
		// process closed the connection itself: shutdown, not trouble.
		lvl = slog.LevelDebug
	}
	a.emit(lvl, msg, args)
}

func closedConn(args []any) bool {
	for i := 1; i < len(args); i += 2 {
		if err, ok := args[i].(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

func (a *Logger) emit(lvl slog.Level, msg string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]slog.Attr, 0, 1+(len(a.implied)+len(args)+1)/2)
	if a.name != "" {
		attrs = append(attrs, slog.String("logger", a.name))
	}
	attrs = appendAttrs(attrs, a.implied)
	attrs = appendAttrs(attrs, args)
	a.l.LogAttrs(ctx, lvl, msg, attrs...)
}

// Trace logs at LevelTrace.
func (a *Logger) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }

// Debug logs at slog Debug.
func (a *Logger) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }

// Info logs at slog Debug, or Info for leadership messages.
func (a *Logger) Info(msg string, args ...any) { a.Log(hclog.Info, msg, args...) }

// Warn logs at slog Warn.
func (a *Logger) Warn(msg string, args ...any) { a.Log(hclog.Warn, msg, args...) }

// Error logs at slog Error.
func (a *Logger) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }

func (a *Logger) enabled(l slog.Level) bool { return a.l.Enabled(context.Background(), l) }

// IsTrace reports whether trace output would be emitted.
func (a *Logger) IsTrace() bool { return a.enabled(LevelTrace) }

// IsDebug reports whether debug output would be emitted. Raft's INFO
// messages are debug output here too.
func (a *Logger) IsDebug() bool { return a.enabled(slog.LevelDebug) }

// IsInfo reports whether raft's INFO messages would be emitted at all: most
// of them are demoted to Debug, so this follows the Debug level.
func (a *Logger) IsInfo() bool { return a.enabled(slog.LevelDebug) }

// IsWarn reports whether warnings would be emitted.
func (a *Logger) IsWarn() bool { return a.enabled(slog.LevelWarn) }

// IsError reports whether errors would be emitted.
func (a *Logger) IsError() bool { return a.enabled(slog.LevelError) }

// ImpliedArgs returns the key/value pairs added by With.
func (a *Logger) ImpliedArgs() []any { return append([]any(nil), a.implied...) }

// With returns a logger that adds args to every message.
func (a *Logger) With(args ...any) hclog.Logger {
	c := *a
	c.implied = append(append([]any(nil), a.implied...), args...)
	return &c
}

// Name returns the dotted hclog name.
func (a *Logger) Name() string { return a.name }

// Named appends name to the logger's name.
func (a *Logger) Named(name string) hclog.Logger {
	c := *a
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

// ResetNamed replaces the logger's name.
func (a *Logger) ResetNamed(name string) hclog.Logger {
	c := *a
	c.name = name
	return &c
}

// SetLevel is a no-op: the slog handler owns the level.
func (a *Logger) SetLevel(hclog.Level) {}

// GetLevel reports the lowest hclog level that would be emitted.
func (a *Logger) GetLevel() hclog.Level {
	switch {
	case a.IsTrace():
		return hclog.Trace
	case a.IsDebug():
		return hclog.Debug
	case a.IsWarn():
		return hclog.Warn
	case a.IsError():
		return hclog.Error
	}
	return hclog.Off
}

// StandardLogger returns a *log.Logger whose lines go through this adapter.
func (a *Logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(opts), "", 0)
}

// StandardWriter returns an io.Writer whose lines go through this adapter.
// With InferLevels a leading "[ERROR]"-style tag picks the level; otherwise
// lines are logged at ForceLevel, or Info.
func (a *Logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	w := &stdWriter{a: a, level: hclog.Info}
	if opts != nil {
		w.infer = opts.InferLevels
		if opts.ForceLevel != hclog.NoLevel {
			w.level, w.infer = opts.ForceLevel, false
		}
	}
	return w
}

type stdWriter struct {
	a     *Logger
	level hclog.Level
	infer bool
}

func (w *stdWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		level := w.level
		if w.infer {
			level, line = inferLevel(line)
		}
		w.a.Log(level, line)
	}
	return len(p), nil
}

func inferLevel(line string) (hclog.Level, string) {
	tags := []struct {
		tag   string
		level hclog.Level
	}{
		{"[TRACE]", hclog.Trace}, {"[DEBUG]", hclog.Debug}, {"[INFO]", hclog.Info},
		{"[WARN]", hclog.Warn}, {"[ERR]", hclog.Error}, {"[ERROR]", hclog.Error},
	}
	for _, t := range tags {
		if rest, ok := strings.CutPrefix(line, t.tag); ok {
			return t.level, strings.TrimSpace(rest)
		}
	}
	return hclog.Info, line
}

// appendAttrs turns hclog's alternating key/value arguments into slog
// attributes. Values that slog would render badly (raft passes *Raft, whose
// exported surface is empty under JSON) are turned into strings here.
func appendAttrs(dst []slog.Attr, args []any) []slog.Attr {
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			dst = append(dst, slog.Any("EXTRA_VALUE_AT_END", value(args[i])))
			break
		}
		key, ok := args[i].(string)
		if !ok {
			key = fmt.Sprint(args[i])
		}
		dst = append(dst, slog.Any(key, value(args[i+1])))
	}
	return dst
}

func value(v any) (out any) {
	switch x := v.(type) {
	case nil, string, bool, int, int32, int64, uint, uint32, uint64, float64, slog.Value:
		return x
	case hclog.Format:
		if len(x) == 0 {
			return ""
		}
		if f, ok := x[0].(string); ok {
			return fmt.Sprintf(f, x[1:]...)
		}
		return fmt.Sprint(x...)
	case hclog.Hex:
		return fmt.Sprintf("0x%x", int(x))
	case hclog.Octal:
		return fmt.Sprintf("0%o", int(x))
	case hclog.Binary:
		return fmt.Sprintf("0b%b", int(x))
	case hclog.Quote:
		return fmt.Sprintf("%q", string(x))
	case error:
		return x
	case fmt.Stringer:
		// A typed nil pointer's String method may panic; logging must not.
		defer func() {
			if recover() != nil {
				out = "<nil>"
			}
		}()
		return x.String()
	default:
		return x
	}
}
