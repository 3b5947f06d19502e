package loop

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestAppendErrorCode(t *testing.T) {
	notCoord, notAvail := errors.New("not coordinator"), errors.New("not available")
	for _, tc := range []struct {
		err   error
		code  int16
		known bool
	}{
		{nil, 0, true},
		{fmt.Errorf("append: %w", notCoord), kerr.NotCoordinator.Code, true},
		{fmt.Errorf("append: %w", notAvail), kerr.CoordinatorNotAvailable.Code, true},
		{context.DeadlineExceeded, kerr.CoordinatorNotAvailable.Code, true},
		{fmt.Errorf("x: %w", kerr.NotEnoughReplicas), kerr.CoordinatorNotAvailable.Code, true},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator.Code, true},
		{kerr.MessageTooLarge, kerr.UnknownServerError.Code, true},
		{kerr.InvalidProducerEpoch, kerr.InvalidProducerEpoch.Code, true},
		{errors.New("disk on fire"), kerr.UnknownServerError.Code, false},
	} {
		code, known := AppendErrorCode(tc.err, notCoord, notAvail)
		if code != tc.code || known != tc.known {
			t.Errorf("%v: (%d, %v), want (%d, %v)", tc.err, code, known, tc.code, tc.known)
		}
	}
}

func TestWatchers(t *testing.T) {
	var w Watchers
	n := 0
	if ch := w.Add(func() bool { return true }); !closed(ch) {
		t.Fatal("a condition that holds now did not close at once")
	}
	ch := w.Add(func() bool { return n >= 2 })
	w.Check()
	if closed(ch) {
		t.Fatal("closed before the condition held")
	}
	n = 2
	w.Check()
	if !closed(ch) {
		t.Fatal("not closed once the condition held")
	}
	w.Check() // nothing left: no double close
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
