package broker

// OffsetCommit v0-v9: answered once the commit is durable in __consumer_offsets.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(8, 0, 9, handleOffsetCommit) }

func handleOffsetCommit(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.OffsetCommitRequest)
	return r.cc.later(func() *reply { return &reply{resp: s.groups.OffsetCommit(ctx, req)} })
}
