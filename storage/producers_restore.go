package storage

import "fmt"

// RestoreProducers loads producer state from a snapshot (the one uploaded
// with the last remote segment) into an empty log, as a log restarted at
// the remote end with ResetEmpty needs: idempotent producers that wrote
// only to remote segments keep their sequences (no duplicate is accepted
// after the restart) and transactions open at the remote end keep holding
// the last stable offset until their markers arrive (by replication, or
// from the transaction coordinator, which writes them again), as Kafka
// restores a replica built from the remote tier. The snapshot is written
// as this log's own at its log end, so a restart finds it. A log holding
// batches gives ErrNotEmpty; a snapshot that does not decode, ErrCorrupt.
func (l *Log) RestoreProducers(snapshot []byte) error {
	m, err := decodeProducerSnapshot(snapshot)
	if err != nil {
		return fmt.Errorf("restore producers %s: %w", l.dir, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return fmt.Errorf("restore producers %s: %w", l.dir, ErrClosed)
	}
	if act := l.active(); len(l.segs) != 1 || act.size != 0 {
		return fmt.Errorf("restore producers %s: %w", l.dir, ErrNotEmpty)
	}
	l.prod.load(m)
	if err := writeFileAtomic(l.dirf, l.dir, snapshotName(l.leo), l.prod.encode()); err != nil {
		l.prod.load(map[int64]*producerEntry{})
		return fmt.Errorf("restore producers %s: %w", l.dir, err)
	}
	l.publishReplayedTxns()
	return nil
}
