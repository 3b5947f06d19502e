package txn

import (
	"context"
	"regexp"
	"slices"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListTransactions handles ListTransactions v0-2 over the partitions this
// coordinator serves. Filters: states (unknown names are echoed in
// UnknownStateFilters), producer ids, v1 duration (transactions running
// longer than it) and v2 transactional id pattern (Go RE2 syntax, matched
// against the whole id as Java's Matcher.matches does). While a partition
// is loading the answer is COORDINATOR_LOAD_IN_PROGRESS.
func (c *Coordinator) ListTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) *kmsg.ListTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var states []State
	for _, name := range req.StateFilters {
		if s, ok := parseState(name); ok {
			states = append(states, s)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	var re *regexp.Regexp
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		var err error
		if re, err = regexp.Compile(`^(?:` + *req.TransactionalIDPattern + `)$`); err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
	}
	duration := int64(-1)
	if req.Version >= 1 {
		duration = req.DurationFilterMillis
	}
	// Every filter asked for something unknown: nothing can match.
	if len(req.StateFilters) > 0 && len(states) == 0 {
		return resp
	}
	return await(c, ctx, func(reply func(*kmsg.ListTransactionsResponse)) {
		for _, ps := range c.parts {
			if ps.loading {
				resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
				reply(resp)
				return
			}
		}
		now := c.now()
		for _, t := range c.txns {
			m := &t.cur
			switch {
			case m.state == StateDead:
			case len(states) > 0 && !slices.Contains(states, m.state):
			case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, m.producerID):
			case duration >= 0 && (m.startMs < 0 || now-m.startMs <= duration):
			case re != nil && !re.MatchString(t.id):
			default:
				ts := kmsg.NewListTransactionsResponseTransactionState()
				ts.TransactionalID, ts.ProducerID, ts.TransactionState = t.id, m.producerID, m.state.String()
				resp.TransactionStates = append(resp.TransactionStates, ts)
			}
		}
		sort.Slice(resp.TransactionStates, func(i, j int) bool {
			return resp.TransactionStates[i].TransactionalID < resp.TransactionStates[j].TransactionalID
		})
		reply(resp)
	}, func(code int16) *kmsg.ListTransactionsResponse {
		r := req.ResponseKind().(*kmsg.ListTransactionsResponse)
		r.ErrorCode = code
		return r
	})
}

// DescribeTransactions handles DescribeTransactions v0: per id its state,
// producer id and epoch, timeout, start time and partitions, or
// NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, TRANSACTIONAL_ID_NOT_FOUND.
func (c *Coordinator) DescribeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) *kmsg.DescribeTransactionsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	build := func(code int16) {
		resp.TransactionStates = resp.TransactionStates[:0]
		for _, id := range req.TransactionalIDs {
			ts := kmsg.NewDescribeTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ErrorCode = id, code
			if code == 0 {
				ts.ErrorCode = c.describeOne(id, &ts)
			}
			resp.TransactionStates = append(resp.TransactionStates, ts)
		}
	}
	return await(c, ctx, func(reply func(*kmsg.DescribeTransactionsResponse)) {
		build(0)
		reply(resp)
	}, func(code int16) *kmsg.DescribeTransactionsResponse {
		r := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		for _, id := range req.TransactionalIDs {
			ts := kmsg.NewDescribeTransactionsResponseTransactionState()
			ts.TransactionalID, ts.ErrorCode = id, code
			r.TransactionStates = append(r.TransactionStates, ts)
		}
		return r
	})
}

func (c *Coordinator) describeOne(id string, ts *kmsg.DescribeTransactionsResponseTransactionState) int16 {
	if _, code := c.owner(id); code != 0 {
		return code
	}
	t := c.txns[id]
	if t == nil || t.cur.state == StateDead {
		return kerr.TransactionalIDNotFound.Code
	}
	m := &t.cur
	ts.State, ts.TimeoutMillis, ts.StartTimestamp = m.state.String(), m.timeoutMs, m.startMs
	ts.ProducerID, ts.ProducerEpoch = m.producerID, m.epoch
	for _, tp := range m.parts {
		if n := len(ts.Topics); n == 0 || ts.Topics[n-1].Topic != tp.Topic {
			tt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			tt.Topic = tp.Topic
			ts.Topics = append(ts.Topics, tt)
		}
		last := &ts.Topics[len(ts.Topics)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	return 0
}
