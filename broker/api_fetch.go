package broker

// Fetch v4-v16.
//
// Record bytes go from segment files to the socket with sendfile; only the
// fixed parts of the response are encoded in memory (proto.EncodeFetchResponse).
// Long polls wait on the partition logs' change channels, never in a sleep
// loop. Sessions follow KIP-227 (fetch_sessions.go); topic ids from v13.
// Authorization as Kafka: a consumer needs READ on each topic (refused
// partitions get TOPIC_AUTHORIZATION_FAILED, known or not; an unknown topic
// id gets UNKNOWN_TOPIC_ID first), a follower CLUSTER_ACTION on the cluster.
// Only the leader serves fetches (NOT_LEADER_OR_FOLLOWER elsewhere). A
// follower's fetch (replica id >= 0) reads up to the log end, long-polls on
// appends, and reports its log end, from which the leader moves the high
// watermark and the ISR (replica.go); an offset only in the remote tier is
// OFFSET_MOVED_TO_TIERED_STORAGE for it. Differences from Apache Kafka:
// consumers never fetch from followers (PreferredReadReplica is always -1).

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

func init() { register(1, 4, 16, handleFetch) }

type fetchResult struct {
	topic    string
	topicID  uuid.UUID
	part     kmsg.FetchResponseTopicPartition
	src      recordSource
	changeCh <-chan struct{}
	// remote is set when the fetch offset lives only in the remote tier;
	// the read happens off the reader goroutine (fetchRemote).
	remote *remoteRead
}

func handleFetch(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.FetchRequest)
	corr := r.hdr.CorrelationID
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	now := time.Now()
	useIDs := req.Version >= 13

	reqParts := make([]sessPart, 0, 8)
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			reqParts = append(reqParts, sessPart{
				key:          sessKey{id: uuid.UUID(rt.TopicID), topic: topicKeyName(useIDs, rt.Topic), partition: rp.Partition},
				fetchOffset:  rp.FetchOffset,
				maxBytes:     rp.PartitionMaxBytes,
				leaderEpoch:  rp.CurrentLeaderEpoch,
				lastFetchedE: rp.LastFetchedEpoch,
			})
		}
	}

	// Resolve the session (KIP-227 rules).
	var (
		sess        *fetchSession
		incremental bool
		targets     []*sessPart
	)
	if req.Version >= 7 {
		switch {
		case req.SessionID == 0 && req.SessionEpoch == -1:
			// sessionless full fetch
		case req.SessionEpoch == -1:
			s.sessions.remove(req.SessionID) // close, then sessionless
		case req.SessionEpoch == 0:
			if req.SessionID != 0 {
				s.sessions.remove(req.SessionID)
			}
			sess = s.sessions.create(now)
		default:
			sess = s.sessions.get(req.SessionID)
			if sess == nil {
				resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
				return fetchErrorReply(corr, resp)
			}
			incremental = true
		}
	}
	if sess != nil {
		sess.mu.Lock()
		if incremental && req.SessionEpoch != sess.epoch {
			sess.mu.Unlock()
			resp.ErrorCode = kerr.InvalidFetchSessionEpoch.Code
			return fetchErrorReply(corr, resp)
		}
		if incremental {
			sess.epoch = nextSessionEpoch(sess.epoch)
		}
		sess.lastUsed = now
		for _, ft := range req.ForgottenTopics {
			for _, p := range ft.Partitions {
				sess.forget(sessKey{id: uuid.UUID(ft.TopicID), topic: topicKeyName(useIDs, ft.Topic), partition: p})
			}
		}
		for _, p := range reqParts {
			sess.upsert(p)
		}
		for _, k := range sess.order {
			targets = append(targets, sess.parts[k])
		}
		sess.mu.Unlock()
		resp.SessionID = sess.id
	} else {
		for i := range reqParts {
			p := &reqParts[i]
			p.sentHW, p.sentLSO, p.sentLogStart = -1, -1, -1
			targets = append(targets, p)
		}
	}

	maxWait := time.Duration(req.MaxWaitMillis) * time.Millisecond
	// Decided once per request: a long poll re-reads the logs, not the ACLs.
	authz := s.fetchAuthz(r, req)
	build := func() ([]fetchResult, int64, bool) {
		return s.collectFetch(req, sess, targets, authz)
	}
	results, total, hasErr := build()
	if hasRemote(results) {
		// Remote reads wait on the object store: never on the reader
		// goroutine, and all partitions of the request in parallel.
		return r.cc.later(func() *reply {
			s.fetchRemote(ctx, results, maxWait)
			return s.finishFetch(r, corr, req, resp, sess, incremental, results)
		})
	}
	if total >= int64(req.MinBytes) || maxWait <= 0 || hasErr || len(targets) == 0 {
		return s.finishFetch(r, corr, req, resp, sess, incremental, results)
	}
	return r.cc.later(func() *reply {
		s.fetchWaiters.Add(1)
		defer s.fetchWaiters.Add(-1)
		timer := time.NewTimer(maxWait)
		defer timer.Stop()
		for {
			if !waitAnyChange(ctx, timer.C, results) {
				break
			}
			releaseResults(results)
			results, total, hasErr = build()
			if total >= int64(req.MinBytes) || hasErr {
				break
			}
		}
		if ctx.Err() != nil {
			releaseResults(results)
			return &reply{none: true}
		}
		return s.finishFetch(r, corr, req, resp, sess, incremental, results)
	})
}

func topicKeyName(useIDs bool, name string) string {
	if useIDs {
		return ""
	}
	return name
}

func fetchErrorReply(corr int32, resp *kmsg.FetchResponse) *reply {
	chunks, _ := proto.EncodeFetchResponse(corr, resp, func(int, int) (any, int64) { return nil, 0 })
	// resp is not written (the chunks are); observeRequest reads its
	// error codes.
	return &reply{resp: resp, fetch: &fetchReply{chunks: chunks}}
}

// waitAnyChange blocks until one of the partitions' high watermarks moves
// (true), or the deadline or ctx ends the wait (false).
func waitAnyChange(ctx context.Context, deadline <-chan time.Time, results []fetchResult) bool {
	// Fan the per-partition channels into one; the helpers end with the
	// wait. (A fetch names few partitions per broker in practice.)
	wake := make(chan struct{}, 1)
	stop := make(chan struct{})
	defer close(stop)
	for _, res := range results {
		if res.changeCh == nil {
			continue
		}
		go func(ch <-chan struct{}) {
			select {
			case <-ch:
				select {
				case wake <- struct{}{}:
				default:
				}
			case <-stop:
			}
		}(res.changeCh)
	}
	select {
	case <-wake:
		return true
	case <-deadline:
		return false
	case <-ctx.Done():
		return false
	}
}

func releaseResults(results []fetchResult) {
	for i := range results {
		if results[i].src != nil {
			results[i].src.release()
			results[i].src = nil
		}
	}
}

// fetchAuthorizer is a fetch's authorization, decided as Kafka does: a
// follower (replica id >= 0) needs CLUSTER_ACTION on the cluster, and
// without it every partition is refused; a consumer needs READ on each
// topic. nil means no authorizer: everything is allowed.
type fetchAuthorizer struct {
	denyAll bool
	read    *authzBatch
}

func (s *Server) fetchAuthz(r *request, req *kmsg.FetchRequest) *fetchAuthorizer {
	if s.authz == nil {
		return nil
	}
	replica := req.ReplicaID
	if req.Version >= 15 {
		replica = req.ReplicaState.ID
	}
	if replica >= 0 {
		if s.allowCluster(r, kmsg.ACLOperationClusterAction) {
			return nil
		}
		return &fetchAuthorizer{denyAll: true}
	}
	return &fetchAuthorizer{read: s.batchAuthz(r, kmsg.ACLOperationRead, kmsg.ACLResourceTypeTopic)}
}

// denies reports whether the target must be answered
// TOPIC_AUTHORIZATION_FAILED. known is whether the topic (or topic id)
// resolved: an unknown topic id is not a secret (ids cannot be guessed),
// so Kafka answers UNKNOWN_TOPIC_ID for it before authorizing, while an
// unknown name is authorized like any other so its absence stays hidden.
func (a *fetchAuthorizer) denies(version int16, name string, known bool) bool {
	switch {
	case a == nil:
		return false
	case a.denyAll:
		return true
	case !known && version >= 13:
		return false
	}
	return !a.read.allow(name)
}

// collectFetch reads every target once. It takes each log's change
// channel before reading, so an append that lands after the read still
// wakes the long poll. A refused partition does not end a long poll by
// itself (Kafka waits on the partitions it may serve); when every
// partition is refused the fetch is answered at once.
func (s *Server) collectFetch(req *kmsg.FetchRequest, sess *fetchSession, targets []*sessPart, authz *fetchAuthorizer) ([]fetchResult, int64, bool) {
	results := make([]fetchResult, 0, len(targets))
	remaining := int64(req.MaxBytes)
	if req.MaxBytes <= 0 {
		remaining = 1<<31 - 1
	}
	var total int64
	hasErr := false
	minOne := true
	readCommitted := req.IsolationLevel == 1
	replica := req.ReplicaID
	if req.Version >= 15 {
		replica = req.ReplicaState.ID
	}
	now := time.Now()
	refused := 0
	if sess != nil {
		sess.mu.Lock()
		defer sess.mu.Unlock()
	}
	for _, t := range targets {
		res := fetchResult{topic: t.key.topic, topicID: t.key.id}
		fp := kmsg.NewFetchResponseTopicPartition()
		fp.Partition = t.key.partition
		fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset = -1, -1, -1
		fp.PreferredReadReplica = -1

		var (
			ts  *topicState
			p   *partition
			err error
		)
		if req.Version >= 13 {
			if tt, ok := s.parts.topicByID(t.key.id); ok {
				ts = tt
				res.topic = tt.name
			}
		} else if tt, ok := s.parts.topic(t.key.topic); ok {
			ts = tt
			res.topicID = tt.id
		}
		if authz.denies(req.Version, res.topic, ts != nil) {
			fp.ErrorCode = kerr.TopicAuthorizationFailed.Code
			res.part = fp
			results = append(results, res)
			refused++
			continue
		}
		switch {
		case ts == nil && req.Version >= 13:
			err = kerr.UnknownTopicID
		case ts == nil:
			err = kerr.UnknownTopicOrPartition
		case t.key.partition < 0 || int(t.key.partition) >= len(ts.parts):
			err = kerr.UnknownTopicOrPartition
		case ts.parts[t.key.partition] == nil:
			err = kerr.NotLeaderForPartition
		default:
			p = ts.parts[t.key.partition]
			err = s.parts.leaderErr(p)
		}
		if err == nil && req.Version >= 9 && t.leaderEpoch != -1 {
			if e := p.epoch(); t.leaderEpoch < e {
				err = kerr.FencedLeaderEpoch
			} else if t.leaderEpoch > e {
				err = kerr.UnknownLeaderEpoch
			}
		}
		if err == nil {
			hw, lso := p.log.HighWatermark(), p.log.LastStableOffset()
			fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset = hw, lso, p.log.LogStartOffset()
			// read_committed reads up to the last stable offset and gets the
			// aborted transactions overlapping what it may read (a superset
			// of the returned range is fine: clients match by producer id
			// and offset), read_uncommitted up to the high watermark; a
			// follower up to the log end, waking on appends (its fetches
			// are what moves the high watermark).
			upper := hw
			res.changeCh = p.log.Changed()
			if replica >= 0 {
				res.changeCh = p.log.Appended()
				upper = p.log.LogEndOffset()
				if t.fetchOffset <= upper {
					s.parts.followerFetched(p, replica, t.fetchOffset, now)
					fp.HighWatermark = p.log.HighWatermark()
				}
			} else if readCommitted {
				upper = lso
				fp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
				if t.fetchOffset < upper {
					for _, a := range p.log.AbortedTransactions(t.fetchOffset, upper) {
						fp.AbortedTransactions = append(fp.AbortedTransactions, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
					}
				}
			}
			if t.fetchOffset < upper && remaining > 0 {
				limit := min(int64(t.maxBytes), remaining)
				rr, rerr := p.log.Read(t.fetchOffset, upper, int32(max(limit, 0)), minOne)
				switch {
				case rerr == nil:
					res.src = &localRecords{rr}
					total += rr.Len
					remaining -= rr.Len
					if rr.Len > 0 {
						minOne = false
					}
				case errors.Is(rerr, storage.ErrOffsetTiered) && replica >= 0:
					err = kerr.OffsetMovedToTieredStorage // followers never copy tiered data
				case errors.Is(rerr, storage.ErrOffsetTiered) && s.tier != nil:
					res.remote = &remoteRead{topicID: ts.id, partition: p.index, offset: t.fetchOffset, maxBytes: int32(max(limit, 0)), minOne: minOne, readCommitted: readCommitted}
					minOne = false
				default:
					err = rerr
				}
			} else if t.fetchOffset > p.log.LogEndOffset() || t.fetchOffset < fp.LogStartOffset {
				err = storage.ErrOffsetOutOfRange
			}
		}
		if err != nil {
			fp.ErrorCode = errorCode(s.log, err)
			hasErr = true
			if !errors.Is(err, storage.ErrOffsetOutOfRange) {
				s.log.Debug("fetch partition error", "topic", res.topic, "partition", t.key.partition, "err", err)
			}
		}
		res.part = fp
		results = append(results, res)
	}
	if refused > 0 && refused == len(targets) {
		hasErr = true // nothing to wait for
	}
	return results, total, hasErr
}

// finishFetch turns collected results into the response: in an
// incremental session only partitions with news are included, and the
// session remembers what it told the client.
func (s *Server) finishFetch(r *request, corr int32, req *kmsg.FetchRequest, resp *kmsg.FetchResponse, sess *fetchSession, incremental bool, results []fetchResult) *reply {
	useIDs := req.Version >= 13
	if sess != nil {
		sess.mu.Lock()
	}
	byTopic := map[sessKey]int{} // topic (partition 0) -> index in resp.Topics
	var srcs [][]recordSource    // per topic index, per partition index
	var held []recordSource
	for i := range results {
		res := &results[i]
		fp := res.part
		var sp *sessPart
		if sess != nil {
			key := sessKey{topic: res.topic, partition: fp.Partition}
			if useIDs {
				key = sessKey{id: res.topicID, partition: fp.Partition}
			}
			sp = sess.parts[key]
		}
		hasRecords := res.src != nil && res.src.size() > 0
		if incremental && sp != nil && !hasRecords && fp.ErrorCode == 0 &&
			sp.sentHW == fp.HighWatermark && sp.sentLSO == fp.LastStableOffset && sp.sentLogStart == fp.LogStartOffset {
			if res.src != nil {
				res.src.release()
				res.src = nil
			}
			continue
		}
		if sp != nil {
			sp.sentHW, sp.sentLSO, sp.sentLogStart = fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset
		}
		tk := sessKey{topic: res.topic}
		if useIDs {
			tk = sessKey{id: res.topicID}
		}
		ti, ok := byTopic[tk]
		if !ok {
			ti = len(resp.Topics)
			byTopic[tk] = ti
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = res.topic
			rt.TopicID = res.topicID
			resp.Topics = append(resp.Topics, rt)
			srcs = append(srcs, nil)
		}
		resp.Topics[ti].Partitions = append(resp.Topics[ti].Partitions, fp)
		srcs[ti] = append(srcs[ti], res.src)
		if res.src != nil {
			held = append(held, res.src)
			if n := res.src.size(); n > 0 {
				if ts, ok := s.parts.topicByID(res.topicID); ok {
					s.metrics.bytesOut.Add(context.Background(), n, ts.attrs)
				}
			}
		}
	}
	if sess != nil {
		sess.mu.Unlock()
	}
	var out int64
	for _, src := range held {
		out += src.size()
	}
	resp.ThrottleMillis = max(resp.ThrottleMillis, s.fetchThrottle(r, out))
	chunks, _ := proto.EncodeFetchResponse(corr, resp, func(t, p int) (any, int64) {
		src := srcs[t][p]
		if src == nil || src.size() == 0 {
			return nil, 0
		}
		return src, src.size()
	})
	return &reply{resp: resp, fetch: &fetchReply{chunks: chunks, sources: held}}
}
