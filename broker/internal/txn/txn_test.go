package txn

import (
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestCommitAndAbortFlows(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			h := newHarness(t)
			const id = "tx"
			pid, ep := h.mustInit(id)
			if pid != 1000 || ep != 0 {
				t.Fatalf("init: pid %d epoch %d", pid, ep)
			}
			if code := h.add(3, id, pid, ep, tp("b", 1), tp("a", 0)); code != 0 {
				t.Fatalf("add: %d", code)
			}
			if code := h.addOffsets(3, id, pid, ep, "my-group"); code != 0 {
				t.Fatalf("add offsets: %d", code)
			}
			d := h.describe(id)
			if d.State != "Ongoing" || d.ProducerID != pid || d.StartTimestamp != h.clk.Now().UnixMilli() || len(d.Topics) != 3 {
				t.Fatalf("describe ongoing: %+v", d)
			}
			if r := h.end(3, id, pid, ep, commit); r.ErrorCode != 0 {
				t.Fatalf("end: %d", r.ErrorCode)
			}
			h.sync()
			want := "CompleteAbort"
			prep := "PrepareAbort"
			if commit {
				want, prep = "CompleteCommit", "PrepareCommit"
			}
			if s := h.state(id); s != want {
				t.Fatalf("state %s, want %s", s, want)
			}
			// "my-group" hashes to partition 12 of 50 __consumer_offsets.
			wantParts := []TopicPartition{tp("__consumer_offsets", 12), tp("a", 0), tp("b", 1)}
			calls := h.markers.all()
			if len(calls) != 1 || calls[0].pid != pid || calls[0].epoch != ep || calls[0].commit != commit ||
				calls[0].coordEp != testCoordEpoch || !reflect.DeepEqual(calls[0].parts, wantParts) {
				t.Fatalf("markers %+v", calls)
			}
			hist := h.log.history(t, id)
			if got := states(hist); !reflect.DeepEqual(got, []string{"Empty", "Ongoing", "Ongoing", prep, want}) {
				t.Fatalf("log states %v", got)
			}
			if last := hist[len(hist)-1]; len(last.parts) != 0 || last.epoch != ep || last.producerID != pid {
				t.Fatalf("complete record %+v", last)
			}
			// The producer goes on with its next transaction, same epoch.
			if code := h.add(3, id, pid, ep, tp("a", 0)); code != 0 {
				t.Fatalf("next transaction: %d", code)
			}
		})
	}
}

func TestNonTransactionalInitProducerID(t *testing.T) {
	h := newHarness(t)
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = 4
	a := h.c.InitProducerID(h.ctx, r)
	b := h.c.InitProducerID(h.ctx, r)
	if a.ErrorCode != 0 || b.ErrorCode != 0 || a.ProducerID == b.ProducerID || a.ProducerEpoch != 0 {
		t.Fatalf("%+v %+v", a, b)
	}
	h.ids.mu.Lock()
	h.ids.fail = errInjected
	h.ids.mu.Unlock()
	if c := h.c.InitProducerID(h.ctx, r); c.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("allocation failure: %d", c.ErrorCode)
	}
}

func TestInitProducerIDValidation(t *testing.T) {
	h := newHarness(t)
	empty := ""
	cases := []struct {
		name    string
		id      *string
		timeout int32
		pid     int64
		epoch   int16
		want    int16
	}{
		{"empty transactional id", &empty, 1000, -1, -1, kerr.InvalidRequest.Code},
		{"timeout above transaction.max.timeout.ms", ptr("a"), int32((5 * time.Minute).Milliseconds()) + 1, -1, -1, kerr.InvalidTransactionTimeout.Code},
		{"zero timeout", ptr("a"), 0, -1, -1, kerr.InvalidTransactionTimeout.Code},
		{"producer id without epoch", ptr("a"), 1000, 5, -1, kerr.InvalidRequest.Code},
		{"timeout at the maximum", ptr("a"), int32((5 * time.Minute).Milliseconds()), -1, -1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := kmsg.NewPtrInitProducerIDRequest()
			r.Version = 4
			r.TransactionalID, r.TransactionTimeoutMillis, r.ProducerID, r.ProducerEpoch = tc.id, tc.timeout, tc.pid, tc.epoch
			if got := h.c.InitProducerID(h.ctx, r).ErrorCode; got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestZombieFencing(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, old := h.mustInit(id)
	pid2, cur := h.mustInit(id) // a second instance takes over
	if pid2 != pid || cur != old+1 {
		t.Fatalf("second init: pid %d epoch %d", pid2, cur)
	}
	cases := []struct {
		name string
		call func() int16
		want int16
	}{
		{"AddPartitions v3 old epoch", func() int16 { return h.add(3, id, pid, old, tp("a", 0)) }, kerr.ProducerFenced.Code},
		{"AddPartitions v1 old epoch", func() int16 { return h.add(1, id, pid, old, tp("a", 0)) }, kerr.InvalidProducerEpoch.Code},
		{"AddPartitions unknown pid", func() int16 { return h.add(3, id, pid+7, cur, tp("a", 0)) }, kerr.InvalidProducerIDMapping.Code},
		{"AddPartitions unknown id", func() int16 { return h.add(3, "nobody", pid, cur, tp("a", 0)) }, kerr.InvalidProducerIDMapping.Code},
		{"AddOffsets v2 old epoch", func() int16 { return h.addOffsets(2, id, pid, old, "g") }, kerr.ProducerFenced.Code},
		{"AddOffsets v1 old epoch", func() int16 { return h.addOffsets(1, id, pid, old, "g") }, kerr.InvalidProducerEpoch.Code},
		{"EndTxn v3 old epoch", func() int16 { return h.end(3, id, pid, old, true).ErrorCode }, kerr.ProducerFenced.Code},
		{"EndTxn v1 old epoch", func() int16 { return h.end(1, id, pid, old, true).ErrorCode }, kerr.InvalidProducerEpoch.Code},
		{"InitProducerId v4 old epoch (KIP-360)", func() int16 { return h.init(4, id, pid, old).ErrorCode }, kerr.ProducerFenced.Code},
		{"InitProducerId v3 old epoch", func() int16 { return h.init(3, id, pid, old).ErrorCode }, kerr.InvalidProducerEpoch.Code},
		{"InitProducerId v4 unknown pid", func() int16 { return h.init(4, id, pid+7, 0).ErrorCode }, kerr.ProducerFenced.Code},
		{"EndTxn v3 current epoch, nothing started", func() int16 { return h.end(3, id, pid, cur, true).ErrorCode }, kerr.InvalidTxnState.Code},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.call(); got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
	if code := h.add(3, id, pid, cur, tp("a", 0)); code != 0 {
		t.Fatalf("current producer: %d", code)
	}
}

func TestInitProducerIDKIP360(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e0 := h.mustInit(id)
	r := h.init(4, id, pid, e0)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e0+1 {
		t.Fatalf("bump with current epoch: %+v", r)
	}
	// The response was lost; the producer retries with what it had.
	r2 := h.init(4, id, pid, e0)
	if r2.ErrorCode != 0 || r2.ProducerID != pid || r2.ProducerEpoch != e0+1 {
		t.Fatalf("retry: %+v", r2)
	}
}

func TestEpochExhaustionRotatesProducerID(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	h.seed(id, meta{producerID: 77, epoch: math.MaxInt16 - 1, state: StateCompleteCommit})
	r := h.init(4, id, 77, math.MaxInt16-1)
	if r.ErrorCode != 0 || r.ProducerID == 77 || r.ProducerEpoch != 0 {
		t.Fatalf("rotation: %+v", r)
	}
	// A retry with the exhausted epoch of the old id gets the same answer.
	r2 := h.init(4, id, 77, math.MaxInt16-1)
	if r2.ErrorCode != 0 || r2.ProducerID != r.ProducerID || r2.ProducerEpoch != 0 {
		t.Fatalf("retry: %+v, first %+v", r2, r)
	}
	last := h.log.history(t, id)
	if m := last[len(last)-1]; m.producerID != r.ProducerID || m.epoch != 0 {
		t.Fatalf("record %+v", m)
	}
}

// seed writes one record straight into the log and reloads, to start a
// scenario from any state.
func (h *harness) seed(id string, m meta) {
	h.t.Helper()
	m.prevProducerID, m.nextProducerID, m.lastEpoch = noProducerID, noProducerID, noProducerEpoch
	if m.timeoutMs == 0 {
		m.timeoutMs = testTimeoutMs
	}
	if m.startMs == 0 {
		m.startMs = h.clk.Now().UnixMilli()
	}
	m.updateMs = h.clk.Now().UnixMilli()
	if err := h.log.Append(h.ctx, h.c.PartitionFor(id), encodeKey(id), encodeValue(m)); err != nil {
		h.t.Fatal(err)
	}
	h.restart()
}

func TestInitDuringOngoingAbortsFirst(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e0 := h.mustInit(id)
	if code := h.add(3, id, pid, e0, tp("a", 0)); code != 0 {
		t.Fatal(code)
	}
	if r := h.init(4, id, -1, -1); r.ErrorCode != kerr.ConcurrentTransactions.Code {
		t.Fatalf("init during ongoing: %+v", r)
	}
	h.sync()
	calls := h.markers.all()
	if len(calls) != 1 || calls[0].commit || calls[0].epoch != e0+1 {
		t.Fatalf("abort markers must carry the bumped epoch: %+v", calls)
	}
	if s := h.state(id); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}
	// The old producer is fenced; the new one gets the next epoch.
	if r := h.end(3, id, pid, e0, true); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("zombie commit: %d", r.ErrorCode)
	}
	r := h.init(4, id, -1, -1)
	if r.ErrorCode != 0 || r.ProducerID != pid || r.ProducerEpoch != e0+2 {
		t.Fatalf("init after abort: %+v", r)
	}
}

func TestEndTxnRetries(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, ep := h.mustInit(id)
	h.add(3, id, pid, ep, tp("a", 0))
	release := make(chan struct{})
	h.markers.setBlock(release)
	if r := h.end(3, id, pid, ep, true); r.ErrorCode != 0 {
		t.Fatal(r.ErrorCode)
	}
	// Markers in flight.
	during := []struct {
		name string
		call func() int16
		want int16
	}{
		{"same outcome", func() int16 { return h.end(3, id, pid, ep, true).ErrorCode }, kerr.ConcurrentTransactions.Code},
		{"opposite outcome", func() int16 { return h.end(3, id, pid, ep, false).ErrorCode }, kerr.InvalidTxnState.Code},
		{"add partitions", func() int16 { return h.add(3, id, pid, ep, tp("b", 0)) }, kerr.ConcurrentTransactions.Code},
		{"init producer id", func() int16 { return h.init(4, id, pid, ep).ErrorCode }, kerr.ConcurrentTransactions.Code},
	}
	for _, tc := range during {
		t.Run("completing/"+tc.name, func(t *testing.T) {
			if got := tc.call(); got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
	h.markers.setBlock(nil)
	close(release)
	h.sync()
	after := []struct {
		name   string
		commit bool
		want   int16
	}{{"same outcome", true, 0}, {"opposite outcome", false, kerr.InvalidTxnState.Code}}
	for _, tc := range after {
		t.Run("complete/"+tc.name, func(t *testing.T) {
			if got := h.end(3, id, pid, ep, tc.commit).ErrorCode; got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
	if n := len(h.markers.all()); n != 1 {
		t.Fatalf("retries must not rewrite markers: %d calls", n)
	}
}

func TestMarkerFailureRetried(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, ep := h.mustInit(id)
	h.add(3, id, pid, ep, tp("a", 0))
	h.markers.setFail(errInjected)
	if r := h.end(3, id, pid, ep, true); r.ErrorCode != 0 {
		t.Fatal(r.ErrorCode)
	}
	h.sync()
	h.clk.Advance(time.Second) // one retry, failing again
	if s := h.state(id); s != "PrepareCommit" {
		t.Fatalf("state %s while markers fail", s)
	}
	if n := len(h.markers.all()); n != 2 {
		t.Fatalf("%d marker calls, want 2", n)
	}
	h.markers.setFail(nil)
	h.clk.Advance(time.Second)
	if s := h.state(id); s != "CompleteCommit" {
		t.Fatalf("state %s after markers succeeded", s)
	}
	calls := h.markers.all()
	if len(calls) != 3 || !calls[2].succeeded || !calls[2].commit {
		t.Fatalf("calls %+v", calls)
	}
}

func TestCompleteWriteFailureRetried(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, ep := h.mustInit(id)
	h.add(3, id, pid, ep, tp("a", 0))
	release := make(chan struct{})
	h.markers.setBlock(release)
	h.end(3, id, pid, ep, false)
	h.log.setFail(ErrCoordinatorNotAvailable)
	h.markers.setBlock(nil)
	close(release)
	h.sync()
	if s := h.state(id); s != "PrepareAbort" {
		t.Fatalf("state %s", s)
	}
	h.log.setFail(nil)
	h.clk.Advance(time.Second)
	if s := h.state(id); s != "CompleteAbort" {
		t.Fatalf("state %s", s)
	}
	if n := len(h.markers.all()); n != 1 {
		t.Fatalf("markers rewritten: %d", n)
	}
}

func TestLogFailureLeavesStateUnchanged(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		err  error
		want int16
	}{
		{ErrNotCoordinator, kerr.NotCoordinator.Code},
		{ErrCoordinatorNotAvailable, kerr.CoordinatorNotAvailable.Code},
		{kerr.NotLeaderForPartition, kerr.NotCoordinator.Code},
		{kerr.RequestTimedOut, kerr.CoordinatorNotAvailable.Code},
		{errInjected, kerr.UnknownServerError.Code},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			h.log.setFail(fmt.Errorf("wrapped: %w", tc.err))
			if r := h.init(4, "new", -1, -1); r.ErrorCode != tc.want {
				t.Fatalf("got %d want %d", r.ErrorCode, tc.want)
			}
			h.log.setFail(nil)
			if s := h.state("new"); s != "none" {
				t.Fatalf("failed init left %s", s)
			}
		})
	}
	pid, ep := h.mustInit("tx")
	h.log.setFail(ErrCoordinatorNotAvailable)
	if code := h.add(3, "tx", pid, ep, tp("a", 0)); code != kerr.CoordinatorNotAvailable.Code {
		t.Fatal(code)
	}
	h.log.setFail(nil)
	if s := h.state("tx"); s != "Empty" {
		t.Fatalf("state %s", s)
	}
}

func TestTimeoutAbortFencesProducer(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, ep := h.mustInit(id) // timeout 60 s
	h.add(3, id, pid, ep, tp("a", 0))
	h.clk.Advance(50 * time.Second)
	if s := h.state(id); s != "Ongoing" {
		t.Fatalf("aborted early: %s", s)
	}
	h.clk.Advance(20 * time.Second) // checked every 10 s
	if s := h.state(id); s != "CompleteAbort" {
		t.Fatalf("state %s after the timeout", s)
	}
	calls := h.markers.all()
	if len(calls) != 1 || calls[0].commit || calls[0].epoch != ep+1 {
		t.Fatalf("markers %+v", calls)
	}
	if r := h.end(3, id, pid, ep, true); r.ErrorCode != kerr.ProducerFenced.Code {
		t.Fatalf("commit after timeout: %d", r.ErrorCode)
	}
	if code := h.add(3, id, pid, ep, tp("a", 0)); code != kerr.ProducerFenced.Code {
		t.Fatalf("add after timeout: %d", code)
	}
}

func TestTransactionalIDExpiration(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.IDExpiration = time.Hour
		c.RemoveExpiredInterval = time.Minute
	})
	pid, ep := h.mustInit("idle")
	h.mustInit("busy")
	h.add(3, "idle", pid, ep, tp("a", 0)) // ongoing transactions never expire
	h.end(3, "idle", pid, ep, true)
	h.sync()
	h.clk.Advance(50 * time.Minute)
	h.mustInit("busy") // used again: its clock restarts
	h.clk.Advance(20 * time.Minute)
	if s := h.state("idle"); s != "none" {
		t.Fatalf("idle id still %s", s)
	}
	if s := h.state("busy"); s != "Empty" {
		t.Fatalf("busy id %s", s)
	}
	if d := h.describe("idle"); d.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("describe %+v", d)
	}
	hist := h.log.history(t, "idle")
	if hist[len(hist)-1] != nil {
		t.Fatalf("no tombstone: %v", states(hist))
	}
	h.restart()
	if s := h.state("idle"); s != "none" {
		t.Fatalf("expired id came back after reload: %s", s)
	}
	// A new producer may use the id again, with a new producer id.
	if r := h.init(4, "idle", -1, -1); r.ErrorCode != 0 || r.ProducerID == pid {
		t.Fatalf("reuse %+v", r)
	}
}

func TestReloadInEveryState(t *testing.T) {
	cases := []struct {
		name    string
		setup   func(h *harness, pid int64, ep int16)
		want    string // right after reload and settling
		markers int    // marker calls made by the new coordinator
		commit  bool
	}{
		{"Empty", func(h *harness, pid int64, ep int16) {}, "Empty", 0, false},
		{"Ongoing", func(h *harness, pid int64, ep int16) {
			h.add(3, "tx", pid, ep, tp("a", 0))
		}, "Ongoing", 0, false},
		{"CompleteCommit", func(h *harness, pid int64, ep int16) {
			h.add(3, "tx", pid, ep, tp("a", 0))
			h.end(3, "tx", pid, ep, true)
		}, "CompleteCommit", 0, false},
		{"CompleteAbort", func(h *harness, pid int64, ep int16) {
			h.add(3, "tx", pid, ep, tp("a", 0))
			h.end(3, "tx", pid, ep, false)
		}, "CompleteAbort", 0, false},
		{"PrepareCommit", func(h *harness, pid int64, ep int16) {
			h.add(3, "tx", pid, ep, tp("a", 0))
			h.markers.setFail(errInjected)
			h.end(3, "tx", pid, ep, true)
		}, "CompleteCommit", 1, true},
		{"PrepareAbort", func(h *harness, pid int64, ep int16) {
			h.add(3, "tx", pid, ep, tp("a", 0))
			h.markers.setFail(errInjected)
			h.end(3, "tx", pid, ep, false)
		}, "CompleteAbort", 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			pid, ep := h.mustInit("tx")
			tc.setup(h, pid, ep)
			h.sync()
			before := h.describe("tx")
			h.restart()
			n0 := len(h.markers.all())
			h.markers.setFail(nil)
			h.clk.Advance(time.Second) // the marker retry after the failure at load
			if s := h.state("tx"); s != tc.want {
				t.Fatalf("after reload: %s, want %s", s, tc.want)
			}
			calls := h.markers.all()[n0:]
			if len(calls) != tc.markers {
				t.Fatalf("%d marker calls after reload, want %d", len(calls), tc.markers)
			}
			if tc.markers > 0 && (calls[0].commit != tc.commit || calls[0].pid != pid || calls[0].epoch != ep ||
				!reflect.DeepEqual(calls[0].parts, []TopicPartition{tp("a", 0)})) {
				t.Fatalf("markers after reload %+v", calls)
			}
			after := h.describe("tx")
			if after.ProducerID != before.ProducerID || after.ProducerEpoch != before.ProducerEpoch ||
				after.TimeoutMillis != before.TimeoutMillis || after.StartTimestamp != before.StartTimestamp {
				t.Fatalf("reloaded %+v, before %+v", after, before)
			}
			if tc.want == "Ongoing" && !reflect.DeepEqual(after.Topics, before.Topics) {
				t.Fatalf("partitions lost: %+v", after.Topics)
			}
			// The producer carries on (or starts a new transaction).
			if tc.want != "Ongoing" {
				if code := h.add(3, "tx", pid, ep, tp("b", 0)); code != 0 {
					t.Fatalf("add after reload: %d", code)
				}
			}
		})
	}
}

func TestCoordinatorOwnership(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	p := h.c.PartitionFor(id)
	h.c.Unload(p)
	if r := h.init(4, id, -1, -1); r.ErrorCode != kerr.NotCoordinator.Code {
		t.Fatalf("unloaded: %d", r.ErrorCode)
	}
	block := make(chan struct{})
	h.log.mu.Lock()
	h.log.replayBlock = block
	h.log.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- h.c.LoadPartition(h.ctx, p, 9) }()
	h.waitFor("partition loading", func() bool { ps := h.c.parts[p]; return ps != nil && ps.loading })
	if r := h.init(4, id, -1, -1); r.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("loading: %d", r.ErrorCode)
	}
	lr := h.c.ListTransactions(h.ctx, kmsg.NewPtrListTransactionsRequest())
	if lr.ErrorCode != kerr.CoordinatorLoadInProgress.Code {
		t.Fatalf("list while loading: %d", lr.ErrorCode)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := h.init(4, id, -1, -1); r.ErrorCode != 0 {
		t.Fatalf("loaded: %d", r.ErrorCode)
	}
}

func TestUnloadCancelsMarkers(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, ep := h.mustInit(id)
	h.add(3, id, pid, ep, tp("a", 0))
	h.markers.setBlock(make(chan struct{})) // never released
	h.end(3, id, pid, ep, true)
	h.c.Unload(h.c.PartitionFor(id))
	h.sync() // the marker write returned on cancellation
	h.markers.setBlock(nil)
	if err := h.c.LoadPartition(h.ctx, h.c.PartitionFor(id), testCoordEpoch+1); err != nil {
		t.Fatal(err)
	}
	h.sync()
	calls := h.markers.all()
	if s := h.state(id); s != "CompleteCommit" || len(calls) != 1 || calls[0].coordEp != testCoordEpoch+1 {
		t.Fatalf("state %s calls %+v", s, calls)
	}
}

func TestTransactionsV2EndTxn(t *testing.T) {
	h := newHarness(t)
	const id = "tx"
	pid, e0 := h.mustInit(id)
	r4 := kmsg.NewPtrAddPartitionsToTxnRequest()
	r4.Version = 4
	tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
	tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch = id, pid, e0
	tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "a", Partitions: []int32{0}}}
	r4.Transactions = append(r4.Transactions, tx)
	if resp := h.c.AddPartitionsToTxn(h.ctx, r4); resp.Transactions[0].Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("v4 add: %+v", resp)
	}
	end := h.end(5, id, pid, e0, true)
	if end.ErrorCode != 0 || end.ProducerID != pid || end.ProducerEpoch != e0+1 {
		t.Fatalf("v5 end: %+v", end)
	}
	h.sync()
	calls := h.markers.all()
	if len(calls) != 1 || calls[0].epoch != e0+1 {
		t.Fatalf("v2 markers carry the bumped epoch: %+v", calls)
	}
	retry := h.end(5, id, pid, e0, true)
	if retry.ErrorCode != 0 || retry.ProducerEpoch != e0+1 {
		t.Fatalf("retry with the old epoch: %+v", retry)
	}
	if r := h.end(5, id, pid, e0, false); r.ErrorCode != kerr.InvalidTxnState.Code {
		t.Fatalf("opposite retry: %d", r.ErrorCode)
	}
	if code := h.add(3, id, pid, e0, tp("a", 0)); code != kerr.ProducerFenced.Code {
		t.Fatalf("old epoch after v2 end: %d", code)
	}
	last := h.log.history(t, id)
	if m := last[len(last)-1]; !m.tv2 || m.state != StateCompleteCommit {
		t.Fatalf("record %+v", m)
	}
	// An abort with nothing in the transaction still bumps the epoch.
	ab := h.end(5, id, pid, e0+1, false)
	if ab.ErrorCode != 0 || ab.ProducerEpoch != e0+2 {
		t.Fatalf("empty abort: %+v", ab)
	}
}

func TestBatchedAddPartitionsVerifyOnly(t *testing.T) {
	h := newHarness(t)
	pid, ep := h.mustInit("tx")
	h.add(3, "tx", pid, ep, tp("a", 0))
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = 4
	mk := func(id string, pid int64, verify bool, parts ...int32) kmsg.AddPartitionsToTxnRequestTransaction {
		tx := kmsg.NewAddPartitionsToTxnRequestTransaction()
		tx.TransactionalID, tx.ProducerID, tx.ProducerEpoch, tx.VerifyOnly = id, pid, ep, verify
		tx.Topics = []kmsg.AddPartitionsToTxnRequestTransactionTopic{{Topic: "a", Partitions: parts}}
		return tx
	}
	r.Transactions = []kmsg.AddPartitionsToTxnRequestTransaction{
		mk("tx", pid, true, 0, 1),
		mk("other", 5, false, 0),
	}
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	got := map[string]int16{}
	for _, tx := range resp.Transactions {
		for _, tt := range tx.Topics {
			for _, p := range tt.Partitions {
				got[fmt.Sprintf("%s/%d", tx.TransactionalID, p.Partition)] = p.ErrorCode
			}
		}
	}
	want := map[string]int16{"tx/0": 0, "tx/1": kerr.InvalidTxnState.Code, "other/0": kerr.InvalidProducerIDMapping.Code}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if d := h.describe("tx"); len(d.Topics[0].Partitions) != 1 {
		t.Fatalf("verify-only must not add: %+v", d.Topics)
	}
}

func TestListAndDescribeTransactions(t *testing.T) {
	h := newHarness(t)
	p1, e1 := h.mustInit("one")
	h.add(3, "one", p1, e1, tp("a", 0))
	h.mustInit("two")
	h.clk.Advance(5 * time.Second)
	list := func(version int16, mod func(*kmsg.ListTransactionsRequest)) ([]string, []string) {
		r := kmsg.NewPtrListTransactionsRequest()
		r.Version = version
		if mod != nil {
			mod(r)
		}
		resp := h.c.ListTransactions(h.ctx, r)
		var ids []string
		for _, s := range resp.TransactionStates {
			ids = append(ids, s.TransactionalID+":"+s.TransactionState)
		}
		return ids, resp.UnknownStateFilters
	}
	cases := []struct {
		name    string
		version int16
		mod     func(*kmsg.ListTransactionsRequest)
		want    []string
		unknown []string
	}{
		{"all", 0, nil, []string{"one:Ongoing", "two:Empty"}, nil},
		{"state", 0, func(r *kmsg.ListTransactionsRequest) { r.StateFilters = []string{"Empty", "Bogus"} }, []string{"two:Empty"}, []string{"Bogus"}},
		{"producer id", 0, func(r *kmsg.ListTransactionsRequest) { r.ProducerIDFilters = []int64{p1} }, []string{"one:Ongoing"}, nil},
		{"duration shorter", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 1000 }, []string{"one:Ongoing"}, nil},
		{"duration longer", 1, func(r *kmsg.ListTransactionsRequest) { r.DurationFilterMillis = 10_000 }, nil, nil},
		{"pattern", 2, func(r *kmsg.ListTransactionsRequest) { r.TransactionalIDPattern = ptr("t.*") }, []string{"two:Empty"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids, unknown := list(tc.version, tc.mod)
			if !reflect.DeepEqual(ids, tc.want) || !reflect.DeepEqual(unknown, tc.unknown) {
				t.Fatalf("got %v %v, want %v %v", ids, unknown, tc.want, tc.unknown)
			}
		})
	}
	d := h.describe("one")
	if d.ErrorCode != 0 || d.State != "Ongoing" || d.ProducerID != p1 || d.ProducerEpoch != e1 || d.TimeoutMillis != testTimeoutMs ||
		!reflect.DeepEqual(d.Topics, []kmsg.DescribeTransactionsResponseTransactionStateTopic{{Topic: "a", Partitions: []int32{0}}}) {
		t.Fatalf("describe %+v", d)
	}
}
