package loop

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Watchers is a test hook both coordinators offer: conditions checked on
// the loop after every event, each closing its channel once it holds.
// Owned by the loop goroutine.
type Watchers struct{ ws []watcher }

type watcher struct {
	cond func() bool
	ch   chan struct{}
}

// Add registers cond; the channel closes once it holds (at once if it
// does now). Call it on the loop.
func (w *Watchers) Add(cond func() bool) <-chan struct{} {
	ch := make(chan struct{})
	if cond() {
		close(ch)
		return ch
	}
	w.ws = append(w.ws, watcher{cond: cond, ch: ch})
	return ch
}

// Check closes the channels of the conditions that now hold. Call it on
// the loop after every event.
func (w *Watchers) Check() {
	if len(w.ws) == 0 {
		return
	}
	kept := w.ws[:0]
	for _, x := range w.ws {
		if x.cond() {
			close(x.ch)
		} else {
			kept = append(kept, x)
		}
	}
	clear(w.ws[len(kept):])
	w.ws = kept
}

// AppendErrorCode maps an error from a coordinator's log append to the
// code its clients get, as Kafka's group and transaction coordinators map
// append errors: notCoordinator and notAvailable are the coordinator's own
// sentinels. known is false for an error with no mapping (the caller logs
// it; the code is then UNKNOWN_SERVER_ERROR).
func AppendErrorCode(err, notCoordinator, notAvailable error) (code int16, known bool) {
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, notCoordinator):
		return kerr.NotCoordinator.Code, true
	case errors.Is(err, notAvailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kerr.CoordinatorNotAvailable.Code, true
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		switch ke {
		case kerr.UnknownTopicOrPartition, kerr.NotEnoughReplicas,
			kerr.NotEnoughReplicasAfterAppend, kerr.RequestTimedOut:
			return kerr.CoordinatorNotAvailable.Code, true
		case kerr.NotLeaderForPartition, kerr.KafkaStorageError:
			return kerr.NotCoordinator.Code, true
		case kerr.MessageTooLarge, kerr.RecordListTooLarge, kerr.InvalidFetchSize:
			return kerr.UnknownServerError.Code, true
		}
		return ke.Code, true
	}
	return kerr.UnknownServerError.Code, false
}
