package broker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// auditCapture collects a broker's log as JSON lines so tests can assert
// on the audit lines it wrote.
type auditCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *auditCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// raw is everything logged so far.
func (c *auditCapture) raw() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// lines returns the audit lines for action ("" = all), decoded.
func (c *auditCapture) lines(t *testing.T, action string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(c.raw(), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["component"] != "audit" || (action != "" && m["action"] != action) {
			continue
		}
		out = append(out, m)
	}
	return out
}

const testAuthorizer = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"

// secServer starts a broker whose log is captured. authorizer turns ACL
// enforcement on; superAnon makes the unauthenticated test clients super
// users (so they may administer), otherwise they hold no ACL at all.
func secServer(t *testing.T, authorizer, superAnon bool) (*testServer, *auditCapture) {
	t.Helper()
	capt := &auditCapture{}
	ts := startServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(capt, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if authorizer {
			c.AuthorizerClassName = testAuthorizer
		}
		if superAnon {
			c.SuperUsers = anonymousPrincipal
		}
	})
	return ts, capt
}

func TestAuditLine(t *testing.T) {
	capt := &auditCapture{}
	s := &Server{log: slog.New(slog.NewJSONHandler(capt, nil))}
	r := &request{cc: &clientConn{principal: "User:alice", host: "10.1.2.3"}}
	s.audit(r, "CreateAcls", append([]any{"what", "thing"}, auditOutcome(0, nil)...)...)
	msg := "bad"
	s.audit(r, "DeleteAcls", auditOutcome(42, &msg)...)

	got := capt.lines(t, "")
	if len(got) != 2 {
		t.Fatalf("%d audit lines, want 2: %s", len(got), capt.raw())
	}
	for k, want := range map[string]any{"msg": "audit", "level": "INFO", "principal": "User:alice", "client_host": "10.1.2.3",
		"action": "CreateAcls", "what": "thing", "outcome": "ok"} {
		if got[0][k] != want {
			t.Errorf("line 1 %s = %v, want %v", k, got[0][k], want)
		}
	}
	if got[1]["outcome"] != "INVALID_REQUEST" || got[1]["error"] != "bad" {
		t.Errorf("line 2 = %v, want outcome INVALID_REQUEST error bad", got[1])
	}
}
