package tiering

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// The chunk cache: verified chunks of remote segments as files in
// CacheDir, bounded by CacheBytes.
//
// Readers never wait for trimming: an insert only adds to the byte count
// and pokes the trimmer goroutine, which evicts least recently used chunks
// down to 90% of the bound (headroom, so it does not run for every insert).
// An evicted chunk is unlinked at once but its file stays open while a
// ReadResult still references it: refs counts the cache's own reference
// plus one per reader, and the last release closes the file.

const (
	chunkSuffix = ".chunk"
	// markEvery: a chunk remembers a batch start at least every markEvery
	// bytes, so finding an offset reads at most that many bytes of headers.
	markEvery = 4 << 10
)

type chunkKey struct {
	segID string
	pos   int64 // byte position of the chunk in the segment's .log object
}

// mark is a batch start inside a chunk: base offset relative to the
// chunk's first batch, byte position in the chunk.
type mark struct{ rel, pos uint32 }

type cacheEntry struct {
	key   chunkKey
	f     *os.File
	path  string
	size  int64
	first int64 // base offset of the first batch
	last  int64 // last offset of the last batch
	marks []mark

	refs atomic.Int32 // the cache's reference (until evicted) + readers'
	used atomic.Int64 // cache clock at the last access
}

// tryRef takes a reference unless the entry's file is already closed.
func (e *cacheEntry) tryRef() bool {
	for {
		n := e.refs.Load()
		if n <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (e *cacheEntry) release() {
	if n := e.refs.Add(-1); n == 0 {
		e.f.Close()
	} else if n < 0 {
		panic("tiering: cache entry released more often than referenced")
	}
}

// locate returns the byte position in the chunk of the batch holding off
// (0 when off precedes the chunk, size when it follows it).
func (e *cacheEntry) locate(off int64) (int64, error) {
	if off <= e.first {
		return 0, nil
	}
	if off > e.last {
		return e.size, nil
	}
	rel := off - e.first
	i := sort.Search(len(e.marks), func(i int) bool { return int64(e.marks[i].rel) > rel }) - 1
	pos := int64(e.marks[max(i, 0)].pos)
	var hb [batchHeadPrefix]byte
	for pos < e.size {
		h, err := e.head(pos, &hb)
		if err != nil {
			return 0, err
		}
		if h.last >= off {
			return pos, nil
		}
		pos += h.size
	}
	return e.size, nil
}

// boundary returns the last batch boundary at or below limit, walking from
// start (a boundary).
func (e *cacheEntry) boundary(start, limit int64) (int64, error) {
	i := sort.Search(len(e.marks), func(i int) bool { return int64(e.marks[i].pos) > limit }) - 1
	pos := start
	if i >= 0 {
		pos = max(pos, int64(e.marks[i].pos))
	}
	var hb [batchHeadPrefix]byte
	for pos < limit {
		h, err := e.head(pos, &hb)
		if err != nil {
			return 0, err
		}
		if pos+h.size > limit {
			break
		}
		pos += h.size
	}
	return pos, nil
}

func (e *cacheEntry) head(pos int64, hb *[batchHeadPrefix]byte) (batchHead, error) {
	if _, err := e.f.ReadAt(hb[:], pos); err != nil {
		return batchHead{}, fmt.Errorf("cache file %s at %d: %w", e.path, pos, err)
	}
	h := parseHead(hb[:])
	if h.size < batchHeaderSize || pos+h.size > e.size {
		// Verified when cached: the file was changed under us.
		return batchHead{}, fmt.Errorf("cache file %s at %d: bad batch length: %w", e.path, pos, ErrCorruptRemote)
	}
	return h, nil
}

type diskCache struct {
	dir    string
	limit  int64
	logger *slog.Logger
	seq    atomic.Uint64 // file name uniqueness
	clock  atomic.Int64  // LRU clock
	trimCh chan struct{}

	mu      sync.Mutex // guards entries, bytes, closed
	entries map[chunkKey]*cacheEntry
	bytes   int64
	closed  bool
}

// newDiskCache removes chunk files a previous run left (the cache does not
// survive restarts: nothing says they are whole) and starts empty.
func newDiskCache(dir string, limit int64, logger *slog.Logger) (*diskCache, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tiering: cache dir: %w", err)
	}
	for _, de := range ents {
		if name := de.Name(); !de.IsDir() && strings.HasSuffix(name, chunkSuffix) {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !os.IsNotExist(err) {
				return nil, fmt.Errorf("tiering: clean cache dir: %w", err)
			}
		}
	}
	return &diskCache{
		dir: dir, limit: limit, logger: logger,
		trimCh:  make(chan struct{}, 1),
		entries: make(map[chunkKey]*cacheEntry),
	}, nil
}

func (c *diskCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *diskCache) touch(e *cacheEntry) { e.used.Store(c.clock.Add(1)) }

// get returns the cached chunk with a reference for the caller, or nil.
func (c *diskCache) get(k chunkKey) *cacheEntry {
	c.mu.Lock()
	e := c.entries[k]
	if e != nil && !e.tryRef() {
		e = nil
	}
	c.mu.Unlock()
	if e != nil {
		c.touch(e)
	}
	return e
}

// add writes a verified chunk to a new file and caches it. The entry comes
// back with a reference for the caller.
func (c *diskCache) add(k chunkKey, data []byte, first, last int64, marks []mark) (*cacheEntry, error) {
	name := fmt.Sprintf("%s-%d-%d%s", k.segID, k.pos, c.seq.Add(1), chunkSuffix)
	path := filepath.Join(c.dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache chunk: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cache chunk: %w", err)
	}
	e := &cacheEntry{key: k, f: f, path: path, size: int64(len(data)), first: first, last: last, marks: marks}
	e.refs.Store(2)
	c.touch(e)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		os.Remove(path) // readable through f until released
		e.refs.Add(-1)
		return e, nil
	}
	old := c.entries[k]
	c.entries[k] = e
	c.bytes += e.size
	if old != nil {
		c.bytes -= old.size
	}
	over := c.bytes > c.limit
	c.mu.Unlock()
	if old != nil {
		c.drop(old)
	}
	if over {
		select {
		case c.trimCh <- struct{}{}:
		default:
		}
	}
	return e, nil
}

func (c *diskCache) drop(e *cacheEntry) {
	if err := os.Remove(e.path); err != nil && !os.IsNotExist(err) {
		c.logger.Warn("removing cache file failed", "path", e.path, "err", err)
	}
	e.release()
}

func (c *diskCache) trimLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.trimCh:
			c.trim()
		}
	}
}

// trim evicts least recently used chunks until the cache is at 90% of its
// bound. The lock is held only to copy the entry list and to unlink
// victims from the map, never during the sort or file removal.
func (c *diskCache) trim() {
	c.mu.Lock()
	if c.bytes <= c.limit {
		c.mu.Unlock()
		return
	}
	type aged struct {
		e    *cacheEntry
		used int64
	}
	all := make([]aged, 0, len(c.entries))
	for _, e := range c.entries {
		all = append(all, aged{e, e.used.Load()})
	}
	c.mu.Unlock()
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.used, b.used) })
	target := c.limit / 10 * 9
	var victims []*cacheEntry
	c.mu.Lock()
	for _, a := range all {
		e := a.e
		if c.bytes <= target {
			break
		}
		if c.entries[e.key] != e {
			continue
		}
		delete(c.entries, e.key)
		c.bytes -= e.size
		victims = append(victims, e)
	}
	c.mu.Unlock()
	for _, e := range victims {
		c.drop(e)
	}
}

// purge evicts the chunks of the segments matching drop.
func (c *diskCache) purge(drop func(segID string) bool) {
	var victims []*cacheEntry
	c.mu.Lock()
	for k, e := range c.entries {
		if drop(k.segID) {
			delete(c.entries, k)
			c.bytes -= e.size
			victims = append(victims, e)
		}
	}
	c.mu.Unlock()
	for _, e := range victims {
		c.drop(e)
	}
}

// close evicts everything; later adds are not cached.
func (c *diskCache) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.purge(func(string) bool { return true })
}
