package tiering

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sort"
	"sync"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
	"github.com/strata-broker/strata/tiering/objstore"
)

// ReadResult holds whole batches read from the remote tier, as ranges of
// cache files to send with sendfile. The files stay open (even if the
// cache evicts them) until Release.
type ReadResult struct {
	Ranges []storage.FileRange
	Len    int64
	// End is an offset past the last batch returned: the end of the last
	// chunk read from (0 when nothing was). It is the upper bound for
	// AbortedTransactions of a read_committed fetch, like Kafka's bound
	// from the offset index; listing aborts a little past what is returned
	// is harmless, missing one is not.
	End     int64
	entries []*cacheEntry
}

// Release lets go of the cache files. Calling it again does nothing.
func (r *ReadResult) Release() {
	for _, e := range r.entries {
		e.release()
	}
	r.entries, r.Ranges = nil, nil
}

// WriteTo copies the batches to w (tests and internal readers).
func (r *ReadResult) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for _, fr := range r.Ranges {
		k, err := io.Copy(w, io.NewSectionReader(fr.File, fr.Pos, fr.Len))
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (r *ReadResult) add(e *cacheEntry, pos, n int64) {
	r.Ranges = append(r.Ranges, storage.FileRange{File: e.f, Pos: pos, Len: n})
	r.entries = append(r.entries, e)
	r.Len += n
	r.End = e.last + 1
}

// chunkSpan is one download unit of a remote segment: bytes [pos, end) of
// its .log object, starting at a batch whose base offset is first (for the
// first chunk, first is the segment's base offset, a lower bound). Chunk
// boundaries are offset index entries, so every chunk is whole batches.
type chunkSpan struct{ pos, end, first int64 }

type segIndex struct{ chunks []chunkSpan }

// find returns the chunk holding offset: the last one starting at or
// below it.
func (x *segIndex) find(offset int64) int {
	return max(sort.Search(len(x.chunks), func(i int) bool { return x.chunks[i].first > offset })-1, 0)
}

// buildChunks checks a remote offset index against its segment and groups
// consecutive entries into chunks of about target bytes (the last one runs
// to the end of the segment).
func buildChunks(seg RemoteSegment, idx []byte, target int64) (*segIndex, error) {
	bad := func(why string, i int) error {
		return fmt.Errorf("remote index of segment %s entry %d: %s: %w", seg.ID, i, why, ErrCorruptRemote)
	}
	if int64(len(idx)) != seg.IndexSize || len(idx)%offsetEntrySize != 0 {
		return nil, bad(fmt.Sprintf("%d bytes, manifest says %d", len(idx), seg.IndexSize), -1)
	}
	if seg.Size == 0 {
		return &segIndex{}, nil
	}
	chunks := []chunkSpan{{pos: 0, first: seg.BaseOffset}}
	prevRel, prevPos := int64(-1), int64(-1)
	for i := 0; i < len(idx)/offsetEntrySize; i++ {
		rel := int64(binary.BigEndian.Uint32(idx[i*8:]))
		pos := int64(binary.BigEndian.Uint32(idx[i*8+4:]))
		switch {
		case rel <= prevRel || pos <= prevPos:
			return nil, bad("not increasing", i)
		case pos > 0 && rel == 0:
			// The batch at 0 starts at or after the base: no later batch can.
			return nil, bad("base offset past byte 0", i)
		case pos+batchHeaderSize > seg.Size || seg.BaseOffset+rel > seg.LastOffset:
			return nil, bad("outside the segment", i)
		}
		prevRel, prevPos = rel, pos
		if c := &chunks[len(chunks)-1]; pos-c.pos >= target {
			c.end = pos
			chunks = append(chunks, chunkSpan{pos: pos, first: seg.BaseOffset + rel})
		}
	}
	chunks[len(chunks)-1].end = seg.Size
	return &segIndex{chunks: chunks}, nil
}

// verifyChunk checks a downloaded chunk before anything is cached: whole
// batches, every CRC, offsets strictly increasing and inside the segment,
// the first batch where the index said, the last one before the next
// chunk's. It returns the sparse batch marks of the chunk.
func verifyChunk(data []byte, seg RemoteSegment, span chunkSpan, nextFirst int64) (first, last int64, marks []mark, err error) {
	bad := func(why string) error {
		return fmt.Errorf("segment %s chunk at byte %d: %s: %w", seg.ID, span.pos, why, ErrCorruptRemote)
	}
	first, last = -1, seg.BaseOffset-1
	at, lastMark := 0, -markEvery
	err = proto.SplitBatches(data, true, func(b proto.Batch) error {
		end := b.BaseOffset + int64(b.LastOffsetDelta)
		switch {
		case b.BaseOffset <= last || b.LastOffsetDelta < 0 || end > seg.LastOffset || end >= nextFirst:
			return bad(fmt.Sprintf("batch at byte %d has offsets [%d, %d] after %d", at, b.BaseOffset, end, last))
		case first < 0 && span.pos > 0 && b.BaseOffset != span.first:
			return bad(fmt.Sprintf("starts at offset %d, index says %d", b.BaseOffset, span.first))
		}
		if first < 0 {
			first = b.BaseOffset
		}
		if end-first > math.MaxUint32 {
			return bad("offsets span more than 2^32")
		}
		if at-lastMark >= markEvery {
			marks = append(marks, mark{rel: uint32(b.BaseOffset - first), pos: uint32(at)})
			lastMark = at
		}
		last = end
		at += len(b.Raw)
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorruptRemote) {
			return 0, 0, nil, err
		}
		return 0, 0, nil, fmt.Errorf("segment %s chunk at byte %d: %w: %w", seg.ID, span.pos, ErrCorruptRemote, err)
	}
	if first < 0 {
		return 0, 0, nil, bad("no batch")
	}
	return first, last, marks, nil
}

// Read serves whole batches from the remote tier: from the batch holding
// offset, up to maxBytes (the first batch whole even if larger, with
// minOne), as ranges of cache files. The first chunk is downloaded if it
// is not cached; later ones are included only if they already are, so a
// read waits for at most one download. Offsets below the remote log start
// or past the remote end are storage.ErrOffsetOutOfRange.
//
// If ctx ends while the chunk downloads, Read returns ctx's error and the
// download carries on into the cache (the client's retry finds it there).
func (m *Manager) Read(ctx context.Context, topicID uuid.UUID, partition int32, offset int64, maxBytes int32, minOne bool) (*ReadResult, error) {
	if m.isClosed() {
		return nil, ErrClosed
	}
	tp := topicPartition{topicID, partition}
	man := m.cfg.Manifests.Manifest(topicID, partition)
	i, ok := man.Find(offset)
	if !ok {
		return nil, fmt.Errorf("remote read %s-%d offset %d (remote log start %d, end %d): %w",
			topicID, partition, offset, man.LogStartOffset, man.End(), storage.ErrOffsetOutOfRange)
	}
	rr := &ReadResult{}
	remaining := int64(max(maxBytes, 0))
	cur := offset
	var firstKey, lastKey, nextKey chunkKey
	lastSeg, lastChunk := -1, -1
	for ; i < len(man.Segments); i++ {
		seg := man.Segments[i]
		idx, err := m.segmentIndex(ctx, tp, seg, rr.Len == 0)
		if err != nil {
			rr.Release()
			return nil, m.readError(tp, seg, offset, err)
		}
		if idx == nil {
			break // the next segment's index is not loaded: stop here
		}
		for ci := idx.find(cur); ci < len(idx.chunks); ci++ {
			span := idx.chunks[ci]
			key := chunkKey{seg.ID, span.pos}
			var e *cacheEntry
			if rr.Len == 0 {
				if e, err = m.chunk(ctx, tp, seg, span, nextFirstOf(man, i, idx, ci)); err != nil {
					rr.Release()
					return nil, m.readError(tp, seg, offset, err)
				}
				if firstKey.segID == "" {
					firstKey = key
				}
			} else if e = m.cache.get(key); e == nil {
				goto done
			}
			start, err := e.locate(cur)
			if err != nil {
				e.release()
				rr.Release()
				return nil, err
			}
			if start >= e.size {
				e.release() // offset in a gap after this chunk
				cur = max(cur, e.last+1)
				continue
			}
			lastKey, lastSeg, lastChunk = key, i, ci
			nextKey = nextChunkKey(man, i, idx, ci)
			if n := e.size - start; n <= remaining {
				rr.add(e, start, n)
				remaining -= n
				cur = e.last + 1
				if remaining == 0 {
					goto done
				}
				continue
			}
			end, err := e.boundary(start, start+remaining)
			if err == nil && end == start && minOne && rr.Len == 0 {
				var hb [batchHeadPrefix]byte
				var h batchHead
				if h, err = e.head(start, &hb); err == nil {
					end = start + h.size
				}
			}
			if err != nil {
				e.release()
				rr.Release()
				return nil, err
			}
			if end > start {
				rr.add(e, start, end-start)
			} else {
				e.release()
			}
			goto done
		}
		cur = max(cur, seg.LastOffset+1)
	}
done:
	if lastSeg >= 0 {
		m.readAhead(tp, man, firstKey, lastKey, nextKey, lastSeg, lastChunk)
	}
	return rr, nil
}

// readError turns a missing object of a segment that retention removed
// meanwhile into an out-of-range error (the client resets its position),
// and wraps the rest with the read's identity.
func (m *Manager) readError(tp topicPartition, seg RemoteSegment, offset int64, err error) error {
	if errors.Is(err, ErrNotFound) && !m.cfg.Manifests.Manifest(tp.id, tp.p).Contains(seg.ID) {
		return fmt.Errorf("remote read %s-%d offset %d: segment %s deleted: %w", tp.id, tp.p, offset, seg.ID, storage.ErrOffsetOutOfRange)
	}
	return fmt.Errorf("remote read %s-%d offset %d: %w", tp.id, tp.p, offset, err)
}

// nextFirstOf is the first offset of the chunk after chunk ci (a batch of
// chunk ci must end before it).
func nextFirstOf(man Manifest, i int, idx *segIndex, ci int) int64 {
	if ci+1 < len(idx.chunks) {
		return idx.chunks[ci+1].first
	}
	return man.Segments[i].LastOffset + 1
}

func nextChunkKey(man Manifest, i int, idx *segIndex, ci int) chunkKey {
	if ci+1 < len(idx.chunks) {
		return chunkKey{man.Segments[i].ID, idx.chunks[ci+1].pos}
	}
	if i+1 < len(man.Segments) {
		return chunkKey{man.Segments[i+1].ID, 0}
	}
	return chunkKey{}
}

// chunk returns the cached chunk, downloading it if needed (one download
// per chunk however many readers want it), with a reference for the caller.
func (m *Manager) chunk(ctx context.Context, tp topicPartition, seg RemoteSegment, span chunkSpan, nextFirst int64) (*cacheEntry, error) {
	f, e := m.chunkFlight(tp, seg, span, nextFirst, true)
	if e != nil {
		m.met.hits.Add(ctx, 1)
		return e, nil
	}
	m.met.misses.Add(ctx, 1)
	select {
	case <-f.done:
	case <-ctx.Done():
		m.flights.leave(f, func() { f.val.(*cacheEntry).release() })
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	return f.val.(*cacheEntry), nil // referenced for us by the download
}

// chunkFlight returns the cached entry (referenced) or the download in
// flight for it, starting one if there is none. The cache is checked under
// the flight lock and a download caches its chunk before it leaves the
// flight map, so no chunk is ever downloaded twice at once. A joining
// caller (join) is handed a reference when the download finishes, before
// the trimmer can evict the chunk; it must wait for the flight or leave it.
func (m *Manager) chunkFlight(tp topicPartition, seg RemoteSegment, span chunkSpan, nextFirst int64, join bool) (*flight, *cacheEntry) {
	key := chunkKey{seg.ID, span.pos}
	if e := m.cache.get(key); e != nil {
		return nil, e // the common case, without the flight lock
	}
	fk := flightKey{chunkFlightKind, key}
	m.flights.mu.Lock()
	if e := m.cache.get(key); e != nil {
		m.flights.mu.Unlock()
		return nil, e
	}
	f, started := m.flights.start(fk)
	if join {
		f.waiters++
	}
	m.flights.mu.Unlock()
	if !started {
		return f, nil
	}
	if !m.spawn(func() {
		ctx, cancel := context.WithTimeout(m.bgCtx, m.tune.downloadTimeout)
		defer cancel()
		e, err := m.download(ctx, tp, seg, span, nextFirst)
		if err != nil {
			m.logDownloadError(tp, seg, span, err)
			m.flights.finish(fk, f, nil, err, nil)
			return
		}
		m.flights.finish(fk, f, e, nil, func(n int) { e.refs.Add(int32(n)) })
		e.release() // the download's own reference
	}) {
		m.flights.finish(fk, f, nil, ErrClosed, nil)
	}
	return f, nil
}

func (m *Manager) logDownloadError(tp topicPartition, seg RemoteSegment, span chunkSpan, err error) {
	logger := m.partLogger(tp)
	switch {
	case errors.Is(err, ErrCorruptRemote):
		logger.Error("remote segment corrupt; nothing cached", "segment", seg.ID, "base", seg.BaseOffset, "chunk_pos", span.pos, "err", err)
	case errors.Is(err, ErrNotFound):
		if m.cfg.Manifests.Manifest(tp.id, tp.p).Contains(seg.ID) {
			logger.Error("remote object missing for a committed segment", "segment", seg.ID, "base", seg.BaseOffset, "err", err)
		} else {
			logger.Debug("remote segment deleted while read", "segment", seg.ID)
		}
	case errors.Is(err, context.Canceled) && m.bgCtx.Err() != nil:
	default:
		logger.Warn("remote chunk download failed", "segment", seg.ID, "chunk_pos", span.pos, "err", err)
	}
}

func (m *Manager) partLogger(tp topicPartition) *slog.Logger {
	if p := m.part(tp); p != nil {
		return p.logger
	}
	return m.logger.With("topic_id", tp.id, "partition", tp.p)
}

var chunkBufs = sync.Pool{New: func() any { return new([]byte) }}

// download fetches one chunk with a ranged GET, verifies it and caches it.
func (m *Manager) download(ctx context.Context, tp topicPartition, seg RemoteSegment, span chunkSpan, nextFirst int64) (*cacheEntry, error) {
	key := KeyFor(m.cfg.ClusterID, tp.id, tp.p, seg, KindLog)
	n := span.end - span.pos
	rc, err := m.cfg.Store.Get(ctx, key, span.pos, n)
	if err != nil {
		if errors.Is(err, objstore.ErrInvalidRange) {
			// The object is shorter than the manifest says.
			return nil, fmt.Errorf("get %s [%d, %d): %w: %w", key, span.pos, span.end, ErrCorruptRemote, err)
		}
		return nil, fmt.Errorf("get %s [%d, %d): %w", key, span.pos, span.end, err)
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	buf := (*bp)[:n]
	got, err := io.ReadFull(rc, buf)
	rc.Close()
	m.met.downloadBytes.Add(ctx, int64(got))
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("get %s [%d, %d): object ends after %d bytes, manifest says %d: %w", key, span.pos, span.end, span.pos+int64(got), seg.Size, ErrCorruptRemote)
		}
		return nil, fmt.Errorf("get %s [%d, %d): %w", key, span.pos, span.end, err)
	}
	first, last, marks, err := verifyChunk(buf, seg, span, nextFirst)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return m.cache.add(chunkKey{seg.ID, span.pos}, buf, first, last, marks)
}

// segmentIndex returns the chunk layout of a remote segment from its
// offset index object, kept in a small LRU. Without block, a layout that
// is not in memory gives (nil, nil).
func (m *Manager) segmentIndex(ctx context.Context, tp topicPartition, seg RemoteSegment, block bool) (*segIndex, error) {
	if x, ok := m.idx.get(seg.ID); ok {
		return x, nil
	}
	if !block {
		return nil, nil
	}
	if seg.IndexSize == 0 {
		x, err := buildChunks(seg, nil, m.tune.chunkBytes)
		if err == nil {
			m.idx.put(seg.ID, x)
		}
		return x, err
	}
	return sharedDownload(ctx, m, flightKey{indexFlightKind, chunkKey{segID: seg.ID}}, tp, seg,
		func() (*segIndex, bool) { return m.idx.get(seg.ID) },
		func(ctx context.Context) (*segIndex, error) { return m.downloadIndex(ctx, tp, seg) },
		func(x *segIndex) { m.idx.put(seg.ID, x) })
}

// sharedDownload runs download once however many callers want the same
// object (fk), on the Manager's context rather than any caller's, and
// hands every caller the result. have is the cache lookup, checked again
// under the flights lock so a download that just finished is not
// repeated; keep stores a result.
func sharedDownload[T any](ctx context.Context, m *Manager, fk flightKey, tp topicPartition, seg RemoteSegment,
	have func() (T, bool), download func(context.Context) (T, error), keep func(T)) (T, error) {
	var zero T
	m.flights.mu.Lock()
	if x, ok := have(); ok {
		m.flights.mu.Unlock()
		return x, nil
	}
	f, started := m.flights.start(fk)
	m.flights.mu.Unlock()
	if started && !m.spawn(func() {
		dctx, cancel := context.WithTimeout(m.bgCtx, m.tune.downloadTimeout)
		defer cancel()
		x, err := download(dctx)
		if err == nil {
			keep(x)
		} else {
			m.logDownloadError(tp, seg, chunkSpan{}, err)
		}
		m.flights.finish(fk, f, x, err, nil)
	}) {
		m.flights.finish(fk, f, nil, ErrClosed, nil)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return zero, ctx.Err()
	}
	if f.err != nil {
		return zero, f.err
	}
	return f.val.(T), nil
}

func (m *Manager) downloadIndex(ctx context.Context, tp topicPartition, seg RemoteSegment) (*segIndex, error) {
	key := KeyFor(m.cfg.ClusterID, tp.id, tp.p, seg, KindIndex)
	rc, err := m.cfg.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, seg.IndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	m.met.downloadBytes.Add(ctx, int64(len(b)))
	x, err := buildChunks(seg, b, m.tune.chunkBytes)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return x, nil
}

// readState spots sequential consumers of a partition: a read that starts
// in the chunk where a recent read ended, or in the one after it.
type readState struct {
	mu     sync.Mutex
	recent [4]struct{ last, next chunkKey }
	n      int
}

func (s *readState) observe(first, last, next chunkKey) (sequential bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recent {
		if r.last.segID != "" && (first == r.last || first == r.next) {
			sequential = true
		}
	}
	// Replace the entry this reader continued from, else the oldest.
	slot := s.n % len(s.recent)
	for j, r := range s.recent {
		if r.last == first || r.next == first {
			slot = j
			break
		}
	}
	if slot == s.n%len(s.recent) {
		s.n++
	}
	s.recent[slot].last, s.recent[slot].next = last, next
	return sequential
}

// readAhead prefetches the chunks after the last one a sequential reader
// was served, in the background, if a prefetch slot is free.
func (m *Manager) readAhead(tp topicPartition, man Manifest, first, last, next chunkKey, seg, ci int) {
	v, ok := m.readers.Load(tp)
	if !ok {
		v, _ = m.readers.LoadOrStore(tp, &readState{})
	}
	if !v.(*readState).observe(first, last, next) || m.tune.readAhead <= 0 {
		return
	}
	select {
	case m.prefetch <- struct{}{}:
	default:
		return
	}
	if !m.spawn(func() {
		defer func() { <-m.prefetch }()
		m.prefetchAfter(tp, man, seg, ci, m.tune.readAhead)
	}) {
		<-m.prefetch
	}
}

func (m *Manager) prefetchAfter(tp topicPartition, man Manifest, i, ci, n int) {
	ctx, cancel := context.WithTimeout(m.bgCtx, m.tune.downloadTimeout)
	defer cancel()
	var waits []*flight
	for n > 0 && i < len(man.Segments) {
		seg := man.Segments[i]
		idx, err := m.segmentIndex(ctx, tp, seg, true)
		if err != nil {
			break
		}
		for ci++; ci < len(idx.chunks) && n > 0; ci++ {
			f, e := m.chunkFlight(tp, seg, idx.chunks[ci], nextFirstOf(man, i, idx, ci), false)
			if e != nil {
				e.release()
			} else {
				waits = append(waits, f)
			}
			n--
		}
		i, ci = i+1, -1
	}
	// Hold the slot until the downloads end: the slots bound prefetch
	// traffic, not just its scheduling.
	for _, f := range waits {
		select {
		case <-f.done:
		case <-ctx.Done():
			return
		}
	}
}

// flight is one download shared by everyone who wants its result.
type flight struct {
	done chan struct{}
	val  any
	err  error
	// Guarded by flightGroup.mu: joined callers still waiting, and whether
	// the result is in.
	waiters  int
	finished bool
}

type flightGroup struct {
	mu sync.Mutex // guards m and the flights' waiters and finished
	m  map[flightKey]*flight
}

// flightKey names a download: a chunk, or a segment's index (pos 0).
type flightKey struct {
	kind byte
	key  chunkKey
}

const (
	chunkFlightKind = 'c'
	indexFlightKind = 'i'
)

// start returns the flight for key, creating it if there is none (started
// is then true and the caller must finish it). Callers hold g.mu.
func (g *flightGroup) start(key flightKey) (f *flight, started bool) {
	if f := g.m[key]; f != nil {
		return f, false
	}
	if g.m == nil {
		g.m = make(map[flightKey]*flight)
	}
	f = &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// finish publishes the result. grant, if any, is called with the number of
// joined waiters (under the lock, so none can leave meanwhile) to hand each
// a share of the result.
func (g *flightGroup) finish(key flightKey, f *flight, val any, err error, grant func(waiters int)) {
	g.mu.Lock()
	f.val, f.err, f.finished = val, err, true
	if err == nil && grant != nil && f.waiters > 0 {
		grant(f.waiters)
	}
	delete(g.m, key)
	g.mu.Unlock()
	close(f.done)
}

// leave withdraws a joined waiter that stops waiting; if the result came in
// first, drop gives back its share.
func (g *flightGroup) leave(f *flight, drop func()) {
	g.mu.Lock()
	if !f.finished {
		f.waiters--
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	if f.err == nil {
		drop()
	}
}

// indexCache keeps the chunk layouts of recently read segments.
type indexCache struct {
	mu  sync.Mutex // guards all fields
	cap int
	m   map[string]*list.Element
	lru *list.List // front: most recent; values *indexItem
}

type indexItem struct {
	id string
	x  *segIndex
}

func newIndexCache(n int) *indexCache {
	return &indexCache{cap: n, m: make(map[string]*list.Element), lru: list.New()}
}

func (c *indexCache) get(id string) (*segIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[id]
	if el == nil {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*indexItem).x, true
}

func (c *indexCache) put(id string, x *segIndex) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[id]; el != nil {
		el.Value.(*indexItem).x = x
		c.lru.MoveToFront(el)
		return
	}
	c.m[id] = c.lru.PushFront(&indexItem{id, x})
	for c.lru.Len() > c.cap {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.m, el.Value.(*indexItem).id)
	}
}

func (c *indexCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[id]; el != nil {
		c.lru.Remove(el)
		delete(c.m, id)
	}
}
