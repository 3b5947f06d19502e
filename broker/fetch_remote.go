package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"

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
