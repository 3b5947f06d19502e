package broker

import (
	"context"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Audit log: one info line per attempted change to ACLs, SCRAM credentials
// or client quotas, successful or not, on a logger tagged
// component=audit so operators can route it apart from the rest. A line
// names who asked (principal and client host), the action (the Kafka API
// name), what was to change and the outcome ("ok" or the Kafka error
// name). Secrets never reach it: SCRAM lines carry the user, mechanism
// and iteration count only, never the salt, salted password or keys.

// audit writes one audit line. attrs describe the change (key/value pairs
// or slog.Attr, as for slog) and should end with auditOutcome.
func (s *Server) audit(r *request, action string, attrs ...any) {
	l := s.log.With("component", "audit")
	if !l.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	args := make([]any, 0, 6+len(attrs))
	args = append(args, "principal", r.principal(), "client_host", r.clientHost(), "action", action)
	args = append(args, attrs...)
	l.Info("audit", args...)
}

// auditOutcome is the outcome attributes of an audit line for a Kafka
// error code: outcome=ok, or outcome=<ERROR_NAME> plus the message.
func auditOutcome(code int16, msg *string) []any {
	if code == 0 {
		return []any{"outcome", "ok"}
	}
	out := []any{"outcome", kerr.TypedErrorForCode(code).Message}
	if msg != nil && *msg != "" {
		out = append(out, "error", *msg)
	}
	return out
}
