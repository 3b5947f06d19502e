package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/storage"
	"github.com/strata-broker/strata/tiering"
)

// remoteRead is a partition whose fetch offset is only in the remote tier.
type remoteRead struct {
	topicID   uuid.UUID
	partition int32
	offset    int64
	maxBytes  int32
	minOne    bool
	// readCommitted: the response must list the aborted transactions of
	// what it returns, from the remote segments' transaction indexes.
	// collectFetch filled the partition's AbortedTransactions from the
	// local segments only (the local log knows nothing below its start).
	readCommitted bool
}

type remoteRecords struct{ rr *tiering.ReadResult }

func (r *remoteRecords) ranges() []storage.FileRange { return r.rr.Ranges }
func (r *remoteRecords) size() int64                 { return r.rr.Len }
func (r *remoteRecords) release()                    { r.rr.Release() }

// remoteFetchZeroWait is how long a fetch with MaxWaitMillis 0 waits for
// the object store; any other fetch waits at most its own MaxWaitMillis,
// so a long poll never outlives what the client asked for. A read that
// takes longer finishes into the cache, so the client's next fetch finds
// it there.
const remoteFetchZeroWait = 100 * time.Millisecond

// addRemoteAborted puts the aborted transactions overlapping [rr.offset,
// end) from the remote tier's transaction indexes before the local ones
// collectFetch listed, as Kafka's RemoteLogManager continues from the
// remote segments into the local ones. When the remote search is complete
// the local list is not needed (it is a superset for a wider range);
// otherwise both are sent, without duplicates (an abort in a segment that
// is both remote and still local would be listed twice).
func (s *Server) addRemoteAborted(ctx context.Context, fp *kmsg.FetchResponseTopicPartition, rr *remoteRead, end int64) error {
	remote, complete, err := s.tier.AbortedTransactions(ctx, rr.topicID, rr.partition, rr.offset, end)
	if err != nil {
		return err
	}
	out := make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 0, len(remote)+len(fp.AbortedTransactions))
	type key struct{ pid, first int64 }
	seen := make(map[key]bool, len(remote))
	for _, a := range remote {
		seen[key{a.ProducerID, a.FirstOffset}] = true
		out = append(out, kmsg.FetchResponseTopicPartitionAbortedTransaction{ProducerID: a.ProducerID, FirstOffset: a.FirstOffset})
	}
	if !complete {
		for _, a := range fp.AbortedTransactions {
			if !seen[key{a.ProducerID, a.FirstOffset}] {
				out = append(out, a)
			}
		}
	}
	fp.AbortedTransactions = out
	return nil
}

func hasRemote(results []fetchResult) bool {
	for i := range results {
		if results[i].remote != nil {
			return true
		}
	}
	return false
}

// fetchRemote reads every remote partition of a fetch in parallel (Kafka
// up to 4.1 reads one per request), bounded by the fetch's wait. A
// partition whose read is not done in time is answered empty, without an
// error; one whose object is corrupt or missing gets KAFKA_STORAGE_ERROR
// and a log line, never wrong bytes.
func (s *Server) fetchRemote(ctx context.Context, results []fetchResult, maxWait time.Duration) {
	wait := maxWait
	if wait <= 0 {
		wait = remoteFetchZeroWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var wg sync.WaitGroup
	for i := range results {
		res := &results[i]
		rr := res.remote
		if rr == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := s.tier.Read(ctx, rr.topicID, rr.partition, rr.offset, rr.maxBytes, rr.minOne)
			if err == nil && rr.readCommitted && out.Len > 0 {
				// Without its aborted transactions the data would show
				// aborted records to a read_committed consumer: none, or
				// both.
				if err = s.addRemoteAborted(ctx, &res.part, rr, out.End); err != nil {
					out.Release()
				}
			}
			switch {
			case err == nil:
				res.src = &remoteRecords{out}
			case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
				// Still downloading into the cache: answer empty now.
			case errors.Is(err, storage.ErrOffsetOutOfRange):
				res.part.ErrorCode = kerr.OffsetOutOfRange.Code
			default:
				s.log.Error("remote read failed", "topic", res.topic, "partition", rr.partition, "offset", rr.offset, "err", err)
				res.part.ErrorCode = kerr.KafkaStorageError.Code
			}
		}()
	}
	wg.Wait()
}
