package txn

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/strata-broker/strata/broker/internal/loop/looptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type kv struct{ key, value []byte }

// memLog is an in-memory __transaction_state with failure injection.
type memLog struct {
	mu          sync.Mutex
	parts       map[int32][]kv
	fail        error
	replayBlock chan struct{} // non-nil: Replay waits for it to close
}

func newMemLog() *memLog { return &memLog{parts: make(map[int32][]kv)} }

func (l *memLog) Append(ctx context.Context, p int32, key, value []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	var v []byte
	if value != nil {
		v = bytes.Clone(value)
	}
	l.parts[p] = append(l.parts[p], kv{bytes.Clone(key), v})
	return nil
}

func (l *memLog) Replay(ctx context.Context, p int32, fn func(key, value []byte)) error {
	l.mu.Lock()
	block := l.replayBlock
	l.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	recs := slices.Clone(l.parts[p])
	l.mu.Unlock()
	for _, r := range recs {
		fn(r.key, r.value)
	}
	return nil
}

func (l *memLog) setFail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}

// history decodes every record written for id, in order (nil = tombstone).
func (l *memLog) history(t *testing.T, id string) []*meta {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*meta
	for _, recs := range l.parts {
		for _, r := range recs {
			got, m, ok, err := decodeRecord(r.key, r.value)
			if err != nil || !ok {
				t.Fatalf("undecodable record: %v", err)
			}
			if got == id {
				out = append(out, m)
			}
		}
	}
	return out
}

func states(ms []*meta) []string {
	var out []string
	for _, m := range ms {
		if m == nil {
			out = append(out, "tombstone")
		} else {
			out = append(out, m.state.String())
		}
	}
	return out
}

type markerCall struct {
	pid       int64
	epoch     int16
	commit    bool
	coordEp   int32
	parts     []TopicPartition
	succeeded bool
}

// fakeMarkers records WriteMarkers calls; it fails while fail is set and
// blocks while block is non-nil.
type fakeMarkers struct {
	mu    sync.Mutex
	calls []markerCall
	fail  error
	block chan struct{}
}

func (f *fakeMarkers) WriteMarkers(ctx context.Context, pid int64, epoch int16, commit bool, coordEp int32, parts []TopicPartition) error {
	f.mu.Lock()
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, markerCall{pid, epoch, commit, coordEp, slices.Clone(parts), f.fail == nil})
	return f.fail
}

func (f *fakeMarkers) setFail(err error) {
	f.mu.Lock()
	f.fail = err
	f.mu.Unlock()
}

func (f *fakeMarkers) setBlock(ch chan struct{}) {
	f.mu.Lock()
	f.block = ch
	f.mu.Unlock()
}

func (f *fakeMarkers) all() []markerCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// fakeIDs hands out 1000, 1001, ...
type fakeIDs struct {
	mu   sync.Mutex
	next int64
	fail error
}

func (f *fakeIDs) NextID(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, f.fail
	}
	id := f.next
	f.next++
	return id, nil
}

const (
	testPartitions = 3
	testCoordEpoch = 7
	testTimeoutMs  = 60_000
)

var errInjected = errors.New("injected failure")

// harness drives one coordinator with a fake clock and in-memory fakes.
type harness struct {
	t       *testing.T
	c       *Coordinator
	clk     *looptest.FakeClock
	log     *memLog
	markers *fakeMarkers
	ids     *fakeIDs
	ctx     context.Context
}

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clk: looptest.NewFakeClock(), log: newMemLog(), markers: &fakeMarkers{}, ids: &fakeIDs{next: 1000}, ctx: context.Background()}
	h.start(mod...)
	return h
}

// start (re)creates the coordinator over the harness's log and loads every
// partition, as a broker taking over does.
func (h *harness) start(mod ...func(*Config)) {
	h.t.Helper()
	cfg := Config{
		Partitions:        testPartitions,
		OffsetsPartitions: 50,
		Log:               h.log,
		ProducerIDs:       h.ids,
		Markers:           h.markers,
		Clock:             h.clk,
		MaxTimeout:        5 * time.Minute,
		RetryBackoff:      time.Second,
	}
	for _, f := range mod {
		f(&cfg)
	}
	h.c = New(cfg)
	h.clk.Settle = h.sync
	h.t.Cleanup(h.c.Close)
	for p := int32(0); p < testPartitions; p++ {
		if err := h.c.LoadPartition(h.ctx, p, testCoordEpoch); err != nil {
			h.t.Fatal(err)
		}
	}
	h.sync()
}

// restart closes the coordinator and starts a new one over the same log.
func (h *harness) restart() {
	h.c.Close()
	h.clk.Settle = nil
	h.start()
}

// sync returns once every append and marker write in flight has finished.
func (h *harness) sync() {
	h.t.Helper()
	h.waitFor("async work to finish", func() bool { return h.c.busy == 0 })
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	var ch <-chan struct{}
	if !h.c.onLoop(context.Background(), func() {
		ch = h.c.watchers.Add(cond)
	}) {
		return // closed
	}
	select {
	case <-ch:
	case <-h.c.done:
	case <-time.After(10 * time.Second):
		h.t.Fatalf("timed out waiting for %s", what)
	}
}

func (h *harness) init(version int16, id string, pid int64, epoch int16) *kmsg.InitProducerIDResponse {
	r := kmsg.NewPtrInitProducerIDRequest()
	r.Version = version
	r.TransactionalID = &id
	r.TransactionTimeoutMillis = testTimeoutMs
	r.ProducerID, r.ProducerEpoch = pid, epoch
	return h.c.InitProducerID(h.ctx, r)
}

// mustInit runs InitProducerId v4 and fails the test on an error.
func (h *harness) mustInit(id string) (int64, int16) {
	h.t.Helper()
	resp := h.init(4, id, -1, -1)
	if resp.ErrorCode != 0 {
		h.t.Fatalf("init %s: error %d", id, resp.ErrorCode)
	}
	return resp.ProducerID, resp.ProducerEpoch
}

func (h *harness) add(version int16, id string, pid int64, epoch int16, tps ...TopicPartition) int16 {
	r := kmsg.NewPtrAddPartitionsToTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch = id, pid, epoch
	for _, tp := range tps {
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = tp.Topic, []int32{tp.Partition}
		r.Topics = append(r.Topics, rt)
	}
	resp := h.c.AddPartitionsToTxn(h.ctx, r)
	code := resp.Topics[0].Partitions[0].ErrorCode
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != code {
				h.t.Fatalf("partitions answered differently: %+v", resp.Topics)
			}
		}
	}
	return code
}

func (h *harness) addOffsets(version int16, id string, pid int64, epoch int16, group string) int16 {
	r := kmsg.NewPtrAddOffsetsToTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Group = id, pid, epoch, group
	return h.c.AddOffsetsToTxn(h.ctx, r).ErrorCode
}

func (h *harness) end(version int16, id string, pid int64, epoch int16, commit bool) *kmsg.EndTxnResponse {
	r := kmsg.NewPtrEndTxnRequest()
	r.Version = version
	r.TransactionalID, r.ProducerID, r.ProducerEpoch, r.Commit = id, pid, epoch, commit
	return h.c.EndTxn(h.ctx, r)
}

func (h *harness) describe(id string) kmsg.DescribeTransactionsResponseTransactionState {
	r := kmsg.NewPtrDescribeTransactionsRequest()
	r.TransactionalIDs = []string{id}
	return h.c.DescribeTransactions(h.ctx, r).TransactionStates[0]
}

func (h *harness) state(id string) string {
	d := h.describe(id)
	if d.ErrorCode != 0 {
		return "none"
	}
	return d.State
}

func tp(topic string, p int32) TopicPartition { return TopicPartition{topic, p} }
