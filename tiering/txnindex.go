package tiering

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/storage"
)

// Transactions on the remote tier: every uploaded segment in which
// something was aborted has a .txnindex object (the local transaction
// index, Kafka's format), and every segment uploaded while the log had
// producers a .snapshot object (producer state as of the segment's end).
// read_committed fetches of remote offsets get their aborted transactions
// from the former, as Kafka's RemoteLogManager does; the latter lets a log
// restarted at the remote end learn its producers back.

const txnFlightKind = 't'

// AbortedTransactions lists, in marker order, the aborted transactions that
// overlap [from, to) (they end at or after from and start before to),
// collected from the transaction indexes of the remote segments from the
// one holding from on. An abort is indexed in the segment of its marker,
// which may come after to, so the walk goes on past to until an entry's
// last stable offset shows that no later abort can overlap (complete), as
// Kafka's collectAbortedTransactions; when the remote segments run out
// first, complete is false and the caller continues with the local log
// (storage.Log.AbortedTransactions).
//
// Segments without aborts cost nothing (the manifest says their index is
// empty); the others' indexes are downloaded once, checked and kept in
// memory. A corrupt index is ErrCorruptRemote, a missing one ErrNotFound
// (storage.ErrOffsetOutOfRange when retention removed the segment
// meanwhile). If ctx ends first, the download carries on into the cache.
func (m *Manager) AbortedTransactions(ctx context.Context, topicID uuid.UUID, partition int32, from, to int64) (_ []storage.AbortedTxn, complete bool, err error) {
	if m.isClosed() {
		return nil, false, ErrClosed
	}
	if from >= to {
		return nil, true, nil
	}
	tp := topicPartition{topicID, partition}
	man := m.cfg.Manifests.Manifest(topicID, partition)
	i, ok := man.Find(from)
	if !ok {
		if from >= man.End() {
			return nil, false, nil // nothing remote there: all local
		}
		return nil, false, fmt.Errorf("remote aborted transactions %s-%d from %d (remote log start %d, end %d): %w",
			topicID, partition, from, man.LogStartOffset, man.End(), storage.ErrOffsetOutOfRange)
	}
	var out []storage.AbortedTxn
	for ; i < len(man.Segments); i++ {
		seg := man.Segments[i]
		if seg.TxnIndexSize == 0 {
			continue
		}
		x, err := m.txnIndex(ctx, tp, seg)
		if err != nil {
			return nil, false, m.readError(tp, seg, from, err)
		}
		if out, complete = x.Collect(from, to, out); complete {
			return out, true, nil
		}
	}
	return out, false, nil
}

// txnIndex returns a segment's parsed transaction index, from memory or
// downloaded (one download however many callers want it).
func (m *Manager) txnIndex(ctx context.Context, tp topicPartition, seg RemoteSegment) (*storage.TxnIndex, error) {
	if x, ok := m.txns.get(seg.ID); ok {
		return x, nil
	}
	return sharedDownload(ctx, m, flightKey{txnFlightKind, chunkKey{segID: seg.ID}}, tp, seg,
		func() (*storage.TxnIndex, bool) { return m.txns.get(seg.ID) },
		func(ctx context.Context) (*storage.TxnIndex, error) { return m.downloadTxnIndex(ctx, tp, seg) },
		func(x *storage.TxnIndex) { m.txns.put(seg.ID, x) })
}

func (m *Manager) downloadTxnIndex(ctx context.Context, tp topicPartition, seg RemoteSegment) (*storage.TxnIndex, error) {
	key := KeyFor(m.cfg.ClusterID, tp.id, tp.p, seg, KindTxnIndex)
	b, err := m.getWhole(ctx, key, seg.TxnIndexSize)
	if err != nil {
		return nil, err
	}
	x, err := storage.ParseTxnIndex(b, seg.BaseOffset, seg.LastOffset+1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w: %w", key, ErrCorruptRemote, err)
	}
	return x, nil
}

// getWhole downloads a small object whose size the manifest records; any
// other size is ErrCorruptRemote.
func (m *Manager) getWhole(ctx context.Context, key string, size int64) ([]byte, error) {
	rc, err := m.cfg.Store.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, size+1))
	m.met.downloadBytes.Add(ctx, int64(len(b)))
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if int64(len(b)) != size {
		return nil, fmt.Errorf("get %s: %d bytes, manifest says %d: %w", key, len(b), size, ErrCorruptRemote)
	}
	return b, nil
}

// ProducerSnapshot downloads the producer snapshot uploaded with the last
// remote segment: the producer state as of offset (the remote end), in
// storage's snapshot format, for a log restarted there. It is nil (with a
// nil error) when the last segment has none: no producers then, or
// uploaded before snapshots were.
func (m *Manager) ProducerSnapshot(ctx context.Context, topicID uuid.UUID, partition int32) (snap []byte, offset int64, err error) {
	if m.isClosed() {
		return nil, 0, ErrClosed
	}
	man := m.cfg.Manifests.Manifest(topicID, partition)
	n := len(man.Segments)
	if n == 0 {
		return nil, man.End(), nil
	}
	seg := man.Segments[n-1]
	if seg.ProducerSnapshotSize == 0 {
		return nil, man.End(), nil
	}
	b, err := m.getWhole(ctx, KeyFor(m.cfg.ClusterID, topicID, partition, seg, KindProducerSnapshot), seg.ProducerSnapshotSize)
	if err != nil {
		return nil, 0, m.readError(topicPartition{topicID, partition}, seg, seg.LastOffset, err)
	}
	return b, man.End(), nil
}

// txnIndexCache keeps parsed transaction indexes of remote segments, least
// recently used out first, bounded by their total entries (the indexes are
// small: only segments with aborts have one). An index larger than the
// bound is not kept.
type txnIndexCache struct {
	mu      sync.Mutex // guards all fields
	limit   int
	entries int
	m       map[string]*list.Element
	lru     *list.List // front: most recent; values *txnItem
}

type txnItem struct {
	id string
	x  *storage.TxnIndex
}

func newTxnIndexCache(limit int) *txnIndexCache {
	return &txnIndexCache{limit: limit, m: make(map[string]*list.Element), lru: list.New()}
}

func (c *txnIndexCache) get(id string) (*storage.TxnIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el := c.m[id]
	if el == nil {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*txnItem).x, true
}

func (c *txnIndexCache) put(id string, x *storage.TxnIndex) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok || x.Len() > c.limit {
		return
	}
	c.m[id] = c.lru.PushFront(&txnItem{id, x})
	c.entries += x.Len()
	for c.entries > c.limit {
		c.removeLocked(c.lru.Back())
	}
}

func (c *txnIndexCache) remove(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el := c.m[id]; el != nil {
		c.removeLocked(el)
	}
}

func (c *txnIndexCache) removeLocked(el *list.Element) {
	it := el.Value.(*txnItem)
	c.lru.Remove(el)
	delete(c.m, it.id)
	c.entries -= it.x.Len()
}
