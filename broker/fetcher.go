package broker

// The follower's side of replication, as Kafka's ReplicaFetcherThread: one
// fetcher per leader broker copies every partition this broker follows
// from it. A partition first asks the leader where its own latest leader
// epoch ends (OffsetForLeaderEpoch) and truncates a divergent tail there;
// then it fetches from its log end with Fetch carrying this broker's
// replica id, appends the leader's batches unchanged (AppendReplicated),
// takes the leader's high watermark and log start offset, and, in the safe
// default (flush.messages=1), fsyncs before its next fetch: the fetch
// offset is what the leader counts as replicated, so it must survive a
// crash of this broker.
//
// A partition whose log is empty and behind the remote tier starts at the
// remote end (tiered segments are never copied between brokers); so does
// one whose next offset the leader only has in the remote tier
// (OFFSET_MOVED_TO_TIERED_STORAGE): its batches, all below the remote end,
// are dropped first.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

const (
	replicaFetchVersion = 13 // topic ids, ReplicaID in the body
	replicaOFLEVersion  = 4
	// epochRetry: a leader that does not know our epoch yet (or we not its)
	// catches up within a metadata round trip; retrying sooner than
	// replica.fetch.backoff.ms shortens failovers.
	epochRetry = 50 * time.Millisecond
	// remoteCheckEvery bounds how often a follower compares its log with
	// the partition's remote manifest.
	remoteCheckEvery = 5 * time.Second
)

type fetchers struct {
	s        *Server
	mu       sync.Mutex
	byLeader map[int32]*fetcher
}

func newFetchers(s *Server) *fetchers { return &fetchers{s: s, byLeader: map[int32]*fetcher{}} }

// fetchPart is one followed partition in a fetcher.
type fetchPart struct {
	t          *topicState
	p          *partition
	epoch      int32
	truncated  bool      // OffsetForLeaderEpoch done for this epoch
	retryAfter time.Time // backing off after an error
	// remoteChecked: when the log was last compared with the remote
	// manifest (resetToRemoteEnd).
	remoteChecked time.Time
	// behind: the leader answered OFFSET_MOVED_TO_TIERED_STORAGE, so local
	// batches below the remote end may be dropped to restart there.
	behind bool
}

type fetcher struct {
	s      *Server
	leader int32
	mu     sync.Mutex
	parts  map[*partition]*fetchPart
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// add makes this broker follow p from leader under epoch (replacing any
// earlier assignment of p).
func (fs *fetchers) add(t *topicState, p *partition, leader, epoch int32) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for id, f := range fs.byLeader {
		if id != leader {
			f.drop(p)
		}
	}
	f := fs.byLeader[leader]
	if f == nil {
		if fs.s.ctx.Err() != nil {
			return
		}
		ctx, cancel := context.WithCancel(fs.s.ctx)
		f = &fetcher{s: fs.s, leader: leader, parts: map[*partition]*fetchPart{}, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
		fs.byLeader[leader] = f
		fs.s.wg.Add(1)
		go f.run(ctx)
	}
	f.mu.Lock()
	if old, ok := f.parts[p]; !ok || old.epoch != epoch {
		f.parts[p] = &fetchPart{t: t, p: p, epoch: epoch}
	}
	f.mu.Unlock()
	f.poke()
}

// remove stops replicating p.
func (fs *fetchers) remove(p *partition) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, f := range fs.byLeader {
		f.drop(p)
	}
}

// following reports the leader p is replicated from, -1 if none.
func (fs *fetchers) following(p *partition) int32 {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for id, f := range fs.byLeader {
		f.mu.Lock()
		_, ok := f.parts[p]
		f.mu.Unlock()
		if ok {
			return id
		}
	}
	return -1
}

func (f *fetcher) drop(p *partition) {
	f.mu.Lock()
	delete(f.parts, p)
	f.mu.Unlock()
}

// owns reports whether p is still replicated by f under epoch.
func (f *fetcher) owns(p *partition, epoch int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	fp, ok := f.parts[p]
	return ok && fp.epoch == epoch
}

func (f *fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fetcher) snapshot() []fetchPart {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fetchPart, 0, len(f.parts))
	for _, fp := range f.parts {
		out = append(out, *fp)
	}
	return out
}

// update applies fn to p's entry if it is still assigned under epoch.
func (f *fetcher) update(p *partition, epoch int32, fn func(*fetchPart)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp, ok := f.parts[p]; ok && fp.epoch == epoch {
		fn(fp)
	}
}

func (f *fetcher) run(ctx context.Context) {
	defer f.s.wg.Done()
	defer close(f.done)
	log := f.s.log.With("component", "replica-fetcher", "leader", f.leader)
	backoff := time.Duration(f.s.cfg.ReplicaFetchBackoffMs) * time.Millisecond
	var c *brokerConn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	failing := false
	for ctx.Err() == nil {
		parts := f.snapshot()
		now := time.Now()
		ready := parts[:0]
		for _, fp := range parts {
			if now.After(fp.retryAfter) {
				ready = append(ready, fp)
			}
		}
		if len(ready) == 0 {
			wait := time.Minute
			for _, fp := range parts {
				wait = min(wait, time.Until(fp.retryAfter))
			}
			select {
			case <-ctx.Done():
				return
			case <-f.wake:
			case <-time.After(wait):
			}
			continue
		}
		if c == nil {
			var err error
			if c, err = f.s.dialBroker(ctx, f.leader); err != nil {
				if !failing && ctx.Err() == nil {
					log.Warn("cannot connect to the leader; retrying", "err", err, "retry_in", backoff)
					failing = true
				}
				c = nil
				sleepCtx(ctx, backoff)
				continue
			}
		}
		err := f.round(ctx, c, ready, log)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !failing {
				log.Warn("replica fetch failed; reconnecting", "err", err, "retry_in", backoff)
				failing = true
			}
			c.close()
			c = nil
			sleepCtx(ctx, backoff)
			continue
		}
		if failing {
			log.Info("replicating from the leader again")
			failing = false
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// round truncates the partitions that need it, then fetches once.
func (f *fetcher) round(ctx context.Context, c *brokerConn, parts []fetchPart, log interface {
	Warn(string, ...any)
	Info(string, ...any)
	Debug(string, ...any)
}) error {
	s := f.s
	var need []fetchPart
	for _, fp := range parts {
		if !fp.truncated {
			need = append(need, fp)
		}
	}
	if len(need) > 0 {
		if err := f.truncate(ctx, c, need); err != nil {
			return err
		}
		return nil // fetch with the fresh state next round
	}

	req := kmsg.NewPtrFetchRequest()
	req.Version = replicaFetchVersion
	req.ReplicaID = s.cfg.NodeID
	req.MaxWaitMillis = s.cfg.ReplicaFetchWaitMaxMs
	req.MinBytes = 1
	req.MaxBytes = s.cfg.ReplicaFetchResponseMaxBytes
	req.SessionID, req.SessionEpoch = 0, -1
	byTopic := map[[16]byte]int{}
	type key struct {
		id [16]byte
		p  int32
	}
	index := map[key]fetchPart{}
	for _, fp := range parts {
		if now := time.Now(); now.Sub(fp.remoteChecked) >= remoteCheckEvery {
			fp.p.fmu.Lock()
			s.resetToRemoteEnd(fp.t, fp.p, fp.behind)
			fp.p.fmu.Unlock()
			f.update(fp.p, fp.epoch, func(x *fetchPart) { x.remoteChecked, x.behind = now, false })
		}
		id := [16]byte(fp.t.id)
		i, ok := byTopic[id]
		if !ok {
			i = len(req.Topics)
			byTopic[id] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.TopicID = id
			rt.Topic = fp.t.name
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = fp.p.index
		rp.CurrentLeaderEpoch = fp.epoch
		rp.FetchOffset = fp.p.log.LogEndOffset()
		rp.LastFetchedEpoch = -1
		rp.LogStartOffset = fp.p.log.LogStartOffset()
		rp.PartitionMaxBytes = s.cfg.ReplicaFetchMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		index[key{id, fp.p.index}] = fp
	}
	timeout := time.Duration(req.MaxWaitMillis)*time.Millisecond + 30*time.Second
	resp := kmsg.NewPtrFetchResponse()
	if err := c.roundTrip(ctx, req, resp, timeout); err != nil {
		return err
	}
	if resp.ErrorCode != 0 {
		return fmt.Errorf("fetch: %w", kerr.ErrorForCode(resp.ErrorCode))
	}
	backoff := time.Duration(s.cfg.ReplicaFetchBackoffMs) * time.Millisecond
	var appended []*partition
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			fp, ok := index[key{rt.TopicID, rp.Partition}]
			if !ok {
				continue
			}
			switch err := kerr.ErrorForCode(rp.ErrorCode); {
			case err == nil:
				if f.applyFetched(fp, rp, log) {
					appended = append(appended, fp.p)
				}
			case errors.Is(err, kerr.OffsetMovedToTieredStorage), errors.Is(err, kerr.OffsetOutOfRange):
				log.Warn("follower log is out of the leader's local range", "topic", fp.t.name, "partition", fp.p.index,
					"log_end", fp.p.log.LogEndOffset(), "leader_log_start", rp.LogStartOffset, "err", err)
				// Compare with the remote manifest again at once: a log
				// with no batches restarts at the remote end.
				f.update(fp.p, fp.epoch, func(x *fetchPart) {
					x.truncated, x.remoteChecked, x.behind = false, time.Time{}, errors.Is(err, kerr.OffsetMovedToTieredStorage)
					x.retryAfter = time.Now().Add(min(backoff, epochRetry))
				})
			default:
				// FENCED_LEADER_EPOCH (metadata here is behind), UNKNOWN_LEADER_EPOCH or
				// NOT_LEADER_OR_FOLLOWER (the leader's is): wait for metadata
				// to move on, then retry.
				log.Debug("replica fetch partition error", "topic", fp.t.name, "partition", fp.p.index, "err", err)
				f.update(fp.p, fp.epoch, func(x *fetchPart) { x.retryAfter = time.Now().Add(min(backoff, epochRetry)) })
			}
		}
	}
	// The next fetch offset tells the leader these records are ours: in
	// the safe default they must be on disk first (one fsync per round
	// serves every partition's appends, as group commit).
	for _, p := range appended {
		if err := p.log.WaitDurable(ctx, p.log.LogEndOffset()); err != nil && ctx.Err() == nil {
			return fmt.Errorf("follower fsync: %w", err)
		}
	}
	return nil
}

// applyFetched appends one partition's fetched batches and takes the
// leader's high watermark and log start. It reports whether it appended.
func (f *fetcher) applyFetched(fp fetchPart, rp kmsg.FetchResponseTopicPartition, log interface {
	Warn(string, ...any)
	Debug(string, ...any)
}) bool {
	p := fp.p
	// A leader change may have handed p to another fetcher (which
	// truncates first) while this fetch was out: its answer is from the
	// old leader and must not be appended.
	p.fmu.Lock()
	defer p.fmu.Unlock()
	if !f.owns(p, fp.epoch) {
		return false
	}
	data := wholeBatches(rp.RecordBatches)
	appended := false
	if len(data) > 0 {
		if _, err := p.log.AppendReplicated(data); err != nil {
			log.Warn("cannot append replicated batches", "topic", fp.t.name, "partition", p.index, "log_end", p.log.LogEndOffset(), "err", err)
			return false
		}
		appended = true
	}
	p.log.SetHighWatermark(rp.HighWatermark)
	if rp.LogStartOffset > p.log.LogStartOffset() {
		if _, err := p.log.DeleteRecordsBefore(min(rp.LogStartOffset, p.log.HighWatermark())); err != nil && !errors.Is(err, storage.ErrOffsetOutOfRange) {
			log.Debug("follower log start", "topic", fp.t.name, "partition", p.index, "err", err)
		}
	}
	return appended
}

// wholeBatches trims a fetched record set to its whole batches: a leader
// may cut the last one off at the size limit.
func wholeBatches(b []byte) []byte {
	n := 0
	for len(b)-n >= 12 {
		size := int(int32(binary.BigEndian.Uint32(b[n+8:])))
		if size <= 0 || len(b)-n-12 < size {
			break
		}
		n += 12 + size
	}
	return b[:n]
}

// truncate asks the leader where each partition's latest epoch ends and
// cuts the divergent tail, as Kafka's follower does on becoming one.
func (f *fetcher) truncate(ctx context.Context, c *brokerConn, parts []fetchPart) error {
	s := f.s
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = replicaOFLEVersion
	req.ReplicaID = s.cfg.NodeID
	byTopic := map[string]int{}
	type key struct {
		topic string
		p     int32
	}
	index := map[key]fetchPart{}
	var none []fetchPart
	for _, fp := range parts {
		latest := fp.p.log.LatestEpoch()
		if latest < 0 {
			none = append(none, fp) // nothing to diverge
			continue
		}
		i, ok := byTopic[fp.t.name]
		if !ok {
			i = len(req.Topics)
			byTopic[fp.t.name] = i
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = fp.t.name
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition = fp.p.index
		rp.CurrentLeaderEpoch = fp.epoch
		rp.LeaderEpoch = latest
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		index[key{fp.t.name, fp.p.index}] = fp
	}
	for _, fp := range none {
		f.update(fp.p, fp.epoch, func(x *fetchPart) { x.truncated = true })
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp := kmsg.NewPtrOffsetForLeaderEpochResponse()
	if err := c.roundTrip(ctx, req, resp, 30*time.Second); err != nil {
		return err
	}
	backoff := time.Duration(s.cfg.ReplicaFetchBackoffMs) * time.Millisecond
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			fp, ok := index[key{rt.Topic, rp.Partition}]
			if !ok {
				continue
			}
			if rp.ErrorCode != 0 {
				s.log.Debug("offset for leader epoch", "topic", fp.t.name, "partition", fp.p.index, "err", kerr.ErrorForCode(rp.ErrorCode))
				f.update(fp.p, fp.epoch, func(x *fetchPart) { x.retryAfter = time.Now().Add(min(backoff, epochRetry)) })
				continue
			}
			if err := f.truncateDivergent(fp, rp.LeaderEpoch, rp.EndOffset); err != nil {
				s.log.Error("cannot truncate follower log", "topic", fp.t.name, "partition", fp.p.index, "err", err)
				f.update(fp.p, fp.epoch, func(x *fetchPart) { x.retryAfter = time.Now().Add(backoff) })
				continue
			}
			f.update(fp.p, fp.epoch, func(x *fetchPart) { x.truncated = true })
		}
	}
	return nil
}

// truncateDivergent applies the leader's answer for this log's latest
// epoch: the leader's epoch leaderEpoch (<= ours) ends at endOffset, so
// everything this log has past min(endOffset, where that epoch ends here)
// never was the leader's and goes.
func (f *fetcher) truncateDivergent(fp fetchPart, leaderEpoch int32, endOffset int64) error {
	s := f.s
	fp.p.fmu.Lock()
	defer fp.p.fmu.Unlock()
	if !f.owns(fp.p, fp.epoch) {
		return nil
	}
	l := fp.p.log
	if leaderEpoch < 0 || endOffset < 0 {
		// The leader knows no epoch this old: keep what is committed.
		endOffset = l.HighWatermark()
	} else if leaderEpoch < l.LatestEpoch() {
		if e, end := l.EndOffsetForEpoch(leaderEpoch); e == leaderEpoch {
			endOffset = min(endOffset, end)
		}
	}
	if endOffset >= l.LogEndOffset() {
		return nil
	}
	s.log.Info("truncating divergent follower log", "topic", fp.t.name, "partition", fp.p.index, "log_end", l.LogEndOffset(), "to", endOffset, "leader_epoch", leaderEpoch)
	return l.TruncateTo(endOffset)
}

// resetToRemoteEnd starts an empty follower log at the remote tier's end,
// so a new replica copies only the hot tail.
func (s *Server) resetToRemoteEnd(t *topicState, p *partition, behind bool) {
	man := manifestStore{s.meta}.Manifest(t.id, p.index)
	if len(man.Segments) == 0 {
		return
	}
	end := man.End()
	if p.log.RemoteEnd() < end && p.log.LogEndOffset() >= end {
		p.log.SetRemoteEnd(end) // local copies below it may go (local retention)
	}
	if p.log.LogEndOffset() >= end {
		return
	}
	if p.log.LocalLogStartOffset() < p.log.LogEndOffset() {
		if !behind {
			return // it may still catch up from the leader's local log
		}
		// The leader no longer has our next offset locally and everything
		// we hold is below the remote end, so in the bucket: drop it and
		// restart there (Kafka's truncateFullyAndStartAt).
		if err := p.log.TruncateTo(p.log.LocalLogStartOffset()); err != nil {
			s.log.Warn("follower log is behind the leader's local log and cannot be emptied to restart at the remote end", "topic", t.name, "partition", p.index, "log_end", p.log.LogEndOffset(), "remote_end", end, "err", err)
			return
		}
	}
	logStart := max(man.LogStartOffset, man.Segments[0].BaseOffset)
	if err := p.log.ResetEmpty(end, logStart); err != nil {
		s.log.Warn("cannot start follower log at the remote end", "topic", t.name, "partition", p.index, "err", err)
		return
	}
	s.log.Info("follower log starts at the remote end", "topic", t.name, "partition", p.index, "remote_end", end)
	s.restoreProducers(t.name, t.id, p.index, p.log, end)
}

// brokerConn is a Kafka connection to another broker, one request at a
// time.
type brokerConn struct {
	nc   net.Conn
	fmt  *kmsg.RequestFormatter
	corr int32
	buf  []byte
}

// dialBroker connects to broker id's inter-broker listener.
func (s *Server) dialBroker(ctx context.Context, id int32) (*brokerConn, error) {
	b, ok := s.meta.Broker(id)
	if !ok {
		return nil, fmt.Errorf("broker %d is not registered", id)
	}
	name := s.interBrokerListener()
	host, port, ok := brokerEndpoint(b, name)
	if !ok {
		return nil, fmt.Errorf("broker %d has no %s listener", id, name)
	}
	addr := net.JoinHostPort(host, itoa(port))
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: s.localDialAddr()}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if s.interBrokerTLS != nil {
		cfg := s.interBrokerTLS.Clone()
		cfg.ServerName = host
		tc := tls.Client(nc, cfg)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(hctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake with broker %d at %s: %w", id, addr, err)
		}
		nc = tc
	}
	return &brokerConn{nc: nc, fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID("strata-replica-fetcher-" + itoa(s.cfg.NodeID)))}, nil
}

func (c *brokerConn) close() { c.nc.Close() }

// roundTrip sends req and reads its response into resp.
func (c *brokerConn) roundTrip(ctx context.Context, req kmsg.Request, resp kmsg.Response, timeout time.Duration) error {
	c.corr++
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.nc.SetDeadline(time.Now().Add(timeout))
	c.buf = c.fmt.AppendRequest(c.buf[:0], req, c.corr)
	if _, err := c.nc.Write(c.buf); err != nil {
		return err
	}
	frame, err := proto.ReadFrame(c.nc, 1<<30, c.buf[:0])
	if err != nil {
		return err
	}
	c.buf = frame[:0]
	if len(frame) < 4 || int32(binary.BigEndian.Uint32(frame)) != c.corr {
		return errors.New("response does not match the request")
	}
	body := frame[4:]
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() {
		// The response header's tagged fields: none expected; skip them.
		n, rest, err := skipTags(body)
		if err != nil {
			return err
		}
		_ = n
		body = rest
	}
	return resp.ReadFrom(slices.Clip(body))
}

// skipTags skips a tagged-field section (uvarint count, then per field a
// uvarint tag, uvarint size and the bytes).
func skipTags(b []byte) (int, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, errors.New("bad tagged fields")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		_, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, nil, errors.New("bad tagged fields")
		}
		b = b[k:]
		size, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < size {
			return 0, nil, errors.New("bad tagged fields")
		}
		b = b[k+int(size):]
	}
	return int(n), b, nil
}
