package broker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions whose segments went to the remote tier and left local disk:
// read_committed consumers still skip the aborted ones (their aborted
// transactions come from the remote segments' transaction indexes), and
// read_uncommitted consumers see everything.
func TestTieredTxnReadCommitted(t *testing.T) {
	ts := startTxnServer(t)
	ctx := context.Background()
	const topic = "tiered-tx"
	adm := kadm.NewClient(ts.client(t))
	cfg := map[string]*string{"segment.bytes": kmsg.StringPtr("2000"), "local.retention.bytes": kmsg.StringPtr("1")}
	if r, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	_, p, err := ts.parts.get(topic, 0)
	if err != nil {
		t.Fatal(err)
	}

	pad := strings.Repeat("p", 60)
	cl := ts.client(t, kgo.TransactionalID("tiered-tx-1"))
	var committed, all []string
	for i := range 16 {
		end, kind := kgo.TryCommit, "commit"
		if i%2 == 1 {
			end, kind = kgo.TryAbort, "abort"
		}
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		var vs []string
		for j := range 3 {
			vs = append(vs, fmt.Sprintf("%s-%02d-%d-%s", kind, i, j, pad))
		}
		txnProduce(t, cl, topic, vs...)
		if err := cl.EndTransaction(ctx, end); err != nil {
			t.Fatalf("end transaction %d: %v", i, err)
		}
		all = append(all, vs...)
		if end == kgo.TryCommit {
			committed = append(committed, vs...)
		}
	}
	// The markers are written after EndTxn answers: wait until every
	// transaction is decided.
	waitFor(t, "transactions decided", func() bool {
		leo := p.log.LogEndOffset()
		return p.log.HighWatermark() == leo && p.log.LastStableOffset() == leo && leo >= int64(len(all)+16)
	})
	txnEnd := p.log.LogEndOffset()
	plain := ts.client(t)
	var tail []string
	for i := range 40 {
		v := fmt.Sprintf("tail-%02d-%s", i, pad)
		if err := plain.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		tail = append(tail, v)
	}
	waitFor(t, "the transactions to be tiered and leave local disk", func() bool {
		ts.parts.enforceRetention()
		return p.log.LocalLogStartOffset() >= txnEnd
	})
	last := tail[len(tail)-1]

	// The remote part of a read_committed fetch lists the aborts.
	rc := ts.raw(t)
	req := fetchReq(12, 0, -1, topic, [16]byte{}, map[int32]int64{0: 0})
	req.IsolationLevel = 1
	req.MaxWaitMillis = 5000
	fp := partitionsOf(rc.do(req).(*kmsg.FetchResponse))[0]
	if fp.ErrorCode != 0 || len(fp.RecordBatches) == 0 {
		t.Fatalf("remote read_committed fetch: error %d, %d bytes", fp.ErrorCode, len(fp.RecordBatches))
	}
	if len(fp.AbortedTransactions) == 0 {
		t.Fatal("remote read_committed fetch lists no aborted transaction")
	}
	req.IsolationLevel = 0
	if fp := partitionsOf(rc.do(req).(*kmsg.FetchResponse))[0]; fp.ErrorCode != 0 || len(fp.AbortedTransactions) != 0 {
		t.Fatalf("read_uncommitted fetch: error %d, aborted %v", fp.ErrorCode, fp.AbortedTransactions)
	}

	if got, want := consumeValues(t, ts, topic, kgo.ReadCommitted(), last), append(slices.Clone(committed), tail...); !slices.Equal(got, want) {
		t.Fatalf("read_committed got\n%v\nwant\n%v", got, want)
	}
	if got, want := consumeValues(t, ts, topic, kgo.ReadUncommitted(), last), append(slices.Clone(all), tail...); !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted got\n%v\nwant\n%v", got, want)
	}
}
