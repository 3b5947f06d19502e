package storage

import "sort"

// epochEntry says that leader epoch `epoch` wrote its first offset at start.
type epochEntry struct {
	epoch int32
	start int64
}

// epochCache is the leader epoch history of the log: epochs and start
// offsets both strictly increasing (starts non-decreasing). It is what
// followers use to find where their log diverges from the leader's.
type epochCache []epochEntry

// assign records that epoch begins at start if it is newer than the latest
// known epoch. It reports whether the cache changed.
func (c *epochCache) assign(epoch int32, start int64) bool {
	if epoch < 0 {
		return false
	}
	if n := len(*c); n > 0 {
		last := (*c)[n-1]
		if epoch <= last.epoch || start < last.start {
			return false
		}
		if start == last.start {
			// The previous epoch wrote nothing: the newer one owns the offset.
			(*c)[n-1] = epochEntry{epoch, start}
			return true
		}
	}
	*c = append(*c, epochEntry{epoch, start})
	return true
}

// truncateFromEnd drops epochs that start at or after leo (their data is
// gone).
func (c *epochCache) truncateFromEnd(leo int64) bool {
	i := len(*c)
	for i > 0 && (*c)[i-1].start >= leo {
		i--
	}
	changed := i != len(*c)
	*c = (*c)[:i]
	return changed
}

// truncateFromStart forgets epochs wholly below the log start offset; the
// epoch live at logStart is kept and moved to start there.
func (c *epochCache) truncateFromStart(logStart int64) bool {
	es := *c
	i := sort.Search(len(es), func(i int) bool { return es[i].start > logStart })
	if i == 0 {
		return false
	}
	keep := es[i-1]
	if i == 1 && keep.start == logStart {
		return false
	}
	keep.start = logStart
	n := copy(es, es[i-1:])
	es[0] = keep
	*c = es[:n]
	return true
}

// epochFor is the epoch that wrote offset, -1 if unknown.
func (c epochCache) epochFor(offset int64) int32 {
	i := sort.Search(len(c), func(i int) bool { return c[i].start > offset })
	if i == 0 {
		return -1
	}
	return c[i-1].epoch
}

// endOffsetFor answers OffsetForLeaderEpoch: the largest epoch <= requested
// and the offset where the next higher epoch starts (the log end if the
// requested epoch is the latest). Following Kafka: an epoch newer than any
// known, or an empty history, gives (-1, -1); an epoch older than the first
// known gives (requested, start of the first epoch), so a follower truncates
// to the earliest point the leader knows.
func (c epochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	if epoch < 0 || len(c) == 0 {
		return -1, -1
	}
	if last := c[len(c)-1]; epoch == last.epoch {
		return epoch, leo
	} else if epoch > last.epoch {
		return -1, -1
	}
	// Index of the first entry with a higher epoch: exists since epoch < last.
	hi := sort.Search(len(c), func(i int) bool { return c[i].epoch > epoch })
	if hi == 0 {
		return epoch, c[0].start
	}
	return c[hi-1].epoch, c[hi].start
}

// EpochForOffset is the leader epoch of the batch holding offset, from the
// epoch history (-1 if offset precedes it).
func (l *Log) EpochForOffset(offset int64) int32 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.epochs.epochFor(offset)
}

// LatestEpoch is the newest leader epoch in the history, -1 if none: what a
// follower asks the leader about (OffsetForLeaderEpoch) before fetching.
func (l *Log) LatestEpoch() int32 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	if n := len(l.epochs); n > 0 {
		return l.epochs[n-1].epoch
	}
	return -1
}

// EndOffsetForEpoch implements OffsetForLeaderEpoch for this log: see
// epochCache.endOffsetFor.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	return l.epochs.endOffsetFor(epoch, l.leo)
}

// writeEpochCheckpoint persists the epoch history. Callers hold mu.
func (l *Log) writeEpochCheckpoint() error {
	l.segMu.RLock()
	data := encodeEpochCheckpoint(l.epochs)
	l.segMu.RUnlock()
	return writeFileAtomic(l.dirf, l.dir, epochFile, data)
}
