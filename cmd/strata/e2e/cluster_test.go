package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// The cluster tests run three broker processes each (see
// cluster_harness_test.go) and are not parallel: failure detection works
// on two-second timeouts, which other tests competing for this machine's
// cores could turn into spurious fencing.

// TestClusterKillLeaderAndController kills (SIGKILL) the leader of a
// partition, then the active controller, and restarts each, for several
// rounds, while an idempotent acks=all producer writes numbered records
// to an RF=3 topic. Then a consumer group reads everything back:
// every acknowledged record exactly once, at the offset it was
// acknowledged with, in order; and after the group coordinator is killed
// too, a new member of the group resumes from the committed offsets.
func TestClusterKillLeaderAndController(t *testing.T) {
	const (
		topic      = "kills"
		partitions = 3
		rounds     = 3
	)
	c := startCluster(t, 3)
	ctx := testContext(t, 150*time.Second)
	adm := c.Admin()
	createReplicatedTopic(ctx, t, adm, topic, partitions, 3, map[string]*string{"min.insync.replicas": str("2")})
	c.waitFullISR(ctx, 30*time.Second, topic)

	sp := startSeqProducer(ctx, c, topic, partitions)
	sp.waitProgress(ctx, 30*time.Second, "the first acknowledgements", nil, 50)

	for round := range rounds {
		// The leader of partition 0.
		v, err := c.partitionFromAny(ctx, topic, 0)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		victim := c.Node(v.Leader)
		killed := time.Now()
		victim.Kill()
		since := sp.acks()
		nv := c.waitLeader(ctx, topic, 0, v.Leader, v.Epoch)
		sp.waitProgress(ctx, 30*time.Second, fmt.Sprintf("round %d: writes acknowledged on every partition after killing leader %d", round, victim.ID), since, 20)
		t.Logf("round %d: killed leader %d (epoch %d); node %d leads at epoch %d; writes flow again after %v",
			round, victim.ID, v.Epoch, nv.Leader, nv.Epoch, time.Since(killed).Round(time.Millisecond))
		victim.restartIn(c)
		c.waitFullISR(ctx, 30*time.Second, topic)

		ctrl, err := c.activeController(ctx)
		if err != nil {
			t.Fatalf("round %d: active controller: %v", round, err)
		}
		victim = c.Node(ctrl)
		killed = time.Now()
		victim.Kill()
		since = sp.acks()
		next := c.waitController(ctx, ctrl)
		sp.waitProgress(ctx, 30*time.Second, fmt.Sprintf("round %d: writes acknowledged on every partition after killing controller %d", round, ctrl), since, 20)
		t.Logf("round %d: killed controller %d; node %d took over; writes flow again after %v",
			round, ctrl, next, time.Since(killed).Round(time.Millisecond))
		victim.restartIn(c)
		c.waitFullISR(ctx, 30*time.Second, topic)
	}
	sp.waitProgress(ctx, 30*time.Second, "writes after the last restart", sp.acks(), 50)
	sp.Stop(ctx)

	// Read everything back through a consumer group, in two halves: the
	// first member commits what it read and leaves; the coordinator dies;
	// the second member must start exactly at the committed offsets.
	const group = "kills-readers"
	ends := endOffsets(ctx, t, adm, topic)
	var total int64
	for _, e := range ends {
		total += e
	}
	groupOpts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	first := c.Client(append(groupOpts, kgo.ClientID("e2e-reader-1"))...)
	logged := map[int32][]offsetRec{}
	var read int64
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	for read < total/2 {
		// At most 500 at a time: a single poll could return everything.
		fs := first.PollRecords(rctx, 500)
		if rctx.Err() != nil {
			t.Fatalf("first group member: read %d of %d records: %v", read, total, rctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Errorf("first group member: fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			logged[r.Partition] = append(logged[r.Partition], offsetRec{r.Offset, fromKgo(r)})
			read++
		})
	}
	cancel()
	if err := first.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("first group member: commit: %v", err)
	}
	committed := map[int32]int64{}
	for p := range int32(partitions) {
		if rs := logged[p]; len(rs) > 0 {
			committed[p] = rs[len(rs)-1].Offset + 1
		}
	}
	first.Close() // leaves the group
	if ok, why := c.committedOffsets(ctx, 10*time.Second, group, topic, committed); !ok {
		t.Fatalf("committed offsets of the first member: %s", why)
	}

	// The coordinator's partition must have followers in its ISR to
	// fail over to.
	c.waitFullISR(ctx, 30*time.Second, "__consumer_offsets")
	coords := adm.FindGroupCoordinators(ctx, group)
	coord, ok := coords[group]
	if !ok || coord.Err != nil {
		t.Fatalf("FindCoordinator %s: %+v", group, coords)
	}
	c.Node(coord.NodeID).Kill()
	t.Logf("read %d of %d records, committed %v, killed coordinator %d", read, total, committed, coord.NodeID)
	if ok, why := c.committedOffsets(ctx, 30*time.Second, group, topic, committed); !ok {
		t.Errorf("committed offsets after the coordinator died: %s", why)
		c.logCoordinators(ctx, group)
	}

	second := c.Client(append(groupOpts, kgo.ClientID("e2e-reader-2"))...)
	startedAt := map[int32]int64{}
	remaining := func() int64 {
		var n int64
		for p, e := range ends {
			next := int64(0)
			if rs := logged[p]; len(rs) > 0 {
				next = rs[len(rs)-1].Offset + 1
			}
			n += e - next
		}
		return n
	}
	rctx, cancel = context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	for remaining() > 0 {
		fs := second.PollFetches(rctx)
		if rctx.Err() != nil {
			t.Fatalf("second group member: %d records left: %v", remaining(), rctx.Err())
		}
		fs.EachError(func(_ string, p int32, err error) { t.Errorf("second group member: fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if _, ok := startedAt[r.Partition]; !ok {
				startedAt[r.Partition] = r.Offset
			}
			logged[r.Partition] = append(logged[r.Partition], offsetRec{r.Offset, fromKgo(r)})
		})
	}
	for p, at := range startedAt {
		if at != committed[p] {
			t.Errorf("second group member started partition %d at offset %d, want the committed %d", p, at, committed[p])
		}
	}
	sp.check(t, "group read-back", logged)
	c.checkNoSplitBrain()
}

// TestClusterIsolatedLeader cuts the leader of a partition off from the
// other nodes. Writes with acks=all sent to it must not be acknowledged;
// the others elect a new leader that takes writes; after healing, the old
// leader rejoins the ISR with its unreplicated tail truncated: the
// partition holds exactly the acknowledged records, whichever replica
// leads, and no two nodes ever named different leaders for one epoch.
func TestClusterIsolatedLeader(t *testing.T) {
	const topic = "isolated"
	c := startCluster(t, 3)
	ctx := testContext(t, 120*time.Second)
	adm := c.Admin()
	createReplicatedTopic(ctx, t, adm, topic, 1, 3, map[string]*string{"min.insync.replicas": str("2")})
	c.waitFullISR(ctx, 30*time.Second, topic)

	var want [][]byte // acknowledged values, in offset order
	produce := func(cl *kgo.Client, prefix string, n int) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		defer func() {
			t.Logf("%d %s records, one at a time with acks=all, in %v", n, prefix, time.Since(start).Round(time.Millisecond))
		}()
		for i := range n {
			v := fmt.Appendf(nil, "%s-%d", prefix, i)
			if err := cl.ProduceSync(pctx, &kgo.Record{Topic: topic, Value: v}).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
			want = append(want, v)
		}
	}
	produce(c.Client(kgo.RequiredAcks(kgo.AllISRAcks())), "before", 50)

	old, err := c.partitionFromAny(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	leader := c.Node(old.Leader)

	// A client that talks to the old leader only, sending Produce v9
	// (topic names, not ids) by hand so nothing retries or reroutes.
	versions := kversion.Stable()
	versions.SetMaxKeyVersion(0, 9)
	pinned, err := kgo.NewClient(kgo.SeedBrokers(leader.ClientAddr), kgo.MaxVersions(versions),
		kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	rawProduce := func(value []byte) (int16, error) {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 3000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = newBatch(value)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		rctx, cancel := context.WithTimeout(ctx, 8*time.Second)
		defer cancel()
		kr, err := pinned.SeedBrokers()[0].Request(rctx, req)
		if err != nil {
			return 0, err
		}
		resp := kr.(*kmsg.ProduceResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return 0, fmt.Errorf("produce response with %d topics", len(resp.Topics))
		}
		return resp.Topics[0].Partitions[0].ErrorCode, nil
	}
	// The hand-made request works while the leader is connected, so its
	// failures below are the isolation's doing.
	if code, err := rawProduce([]byte("raw-connected")); err != nil || code != 0 {
		t.Fatalf("raw produce to leader %d before isolating it: code %d (%v), err %v", leader.ID, code, kerr.ErrorForCode(code), err)
	}
	want = append(want, []byte("raw-connected"))

	c.Net.Isolate(int(leader.ID))
	isolated := time.Now()
	t.Logf("isolated node %d, leader of %s/0 at epoch %d", leader.ID, topic, old.Epoch)

	// Write to the old leader all through the isolation: nothing written
	// to it from now on may be acknowledged.
	var (
		mu       sync.Mutex
		unacked  [][]byte
		outcomes = map[string]int{} // how the isolated leader answered
		stop     = make(chan struct{})
		writer   sync.WaitGroup
	)
	answers := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, k := range outcomes {
			n += k
		}
		return n
	}
	writer.Add(1)
	go func() {
		defer writer.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			v := fmt.Appendf(nil, "unacked-%d", i)
			mu.Lock()
			unacked = append(unacked, v)
			mu.Unlock()
			sent := time.Now()
			code, err := rawProduce(v)
			took := time.Since(sent)
			var outcome string
			switch {
			case err != nil:
				outcome = err.Error()
			case code == 0:
				outcome = "acknowledged"
				t.Errorf("isolated leader %d acknowledged %s with acks=all %v after it was cut off", leader.ID, v, time.Since(isolated).Round(time.Millisecond))
			default:
				outcome = kerr.ErrorForCode(code).Error()
				if took > 6*time.Second {
					t.Errorf("isolated leader answered %s only after %v; the request timeout was 3 s", v, took.Round(time.Millisecond))
				}
			}
			mu.Lock()
			outcomes[outcome]++
			mu.Unlock()
			// Quick refusals must not turn this into a busy loop.
			select {
			case <-stop:
				return
			case <-time.After(100*time.Millisecond - min(took, 100*time.Millisecond)):
			}
		}
	}()
	var stopOnce sync.Once
	stopWriter := func() {
		stopOnce.Do(func() { close(stop) })
		writer.Wait()
	}
	defer stopWriter() // before the test ends, also when it fails early
	nv := c.waitLeader(ctx, topic, 0, leader.ID, old.Epoch, leader.ID)
	t.Logf("node %d leads at epoch %d, %v after the isolation", nv.Leader, nv.Epoch, time.Since(isolated).Round(time.Millisecond))

	// The majority side takes acks=all writes.
	var others []*clusterNode
	for _, nd := range c.Nodes {
		if nd.ID != leader.ID {
			others = append(others, nd)
		}
	}
	majority := c.Client(kgo.SeedBrokers(c.clientAddrs(others...)...), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce(majority, "after", 50)

	// At least two answers from the isolated leader, the last one well
	// after the others moved on.
	if ok, why := pollUpTo(ctx, 15*time.Second, func() (bool, string) {
		return answers() >= 2, fmt.Sprintf("%d answers", answers())
	}); !ok {
		stopWriter()
		t.Fatalf("the isolated leader did not answer acks=all writes: %s; %v", why, outcomes)
	}
	stopWriter()
	lv, err := c.Partitions(ctx, leader, topic)
	t.Logf("answers of the isolated leader to %d acks=all writes: %v; it describes %s/0 as %s (%v)", len(unacked), outcomes, topic, lv[0], err)

	c.Net.Heal()
	c.waitFullISR(ctx, 30*time.Second, topic)
	// Every node, the old leader included, agrees on the leader.
	var agreed partitionView
	waitUpTo(ctx, t, 20*time.Second, "every node to agree on the leader after healing", func() (bool, string) {
		var views []string
		agreed = partitionView{Leader: -2}
		same := true
		for _, nd := range c.Nodes {
			ps, err := c.Partitions(ctx, nd, topic)
			if err != nil {
				return false, err.Error()
			}
			v := ps[0]
			views = append(views, fmt.Sprintf("node %d: %s", nd.ID, v))
			if agreed.Leader == -2 {
				agreed = v
			} else if v.Leader != agreed.Leader || v.Epoch != agreed.Epoch {
				same = false
			}
		}
		return same, strings.Join(views, "; ")
	})

	checkLog := func(what string) {
		t.Helper()
		ends := endOffsets(ctx, t, adm, topic)
		got := readKgo(ctx, t, c.Node(agreed.Leader).brokerProc, topic, zeros(1), ends)[0]
		for _, r := range got {
			for _, u := range unacked {
				if bytes.Equal(r.Value, u) {
					t.Errorf("%s: offset %d holds %s, written only to the isolated leader and never acknowledged", what, r.Offset, u)
				}
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d records, want the %d acknowledged", what, len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			if got[i].Offset != int64(i) || !bytes.Equal(got[i].Value, want[i]) {
				t.Errorf("%s: offset %d holds %q at %d, want %q", what, i, got[i].Value, got[i].Offset, want[i])
				break
			}
		}
	}
	checkLog(fmt.Sprintf("log read from leader %d", agreed.Leader))

	// Make the old leader lead again (it is the preferred replica when it
	// was the first leader) so its own log is what consumers read: it
	// must have dropped what it took while cut off.
	if len(agreed.Replicas) > 0 && agreed.Replicas[0] == leader.ID && agreed.Leader != leader.ID {
		res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}}})
		if err != nil {
			t.Fatalf("ElectLeaders: %v", err)
		}
		for _, ps := range res {
			for _, r := range ps {
				if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) {
					t.Fatalf("ElectLeaders %s/%d: %v", r.Topic, r.Partition, r.Err)
				}
			}
		}
		waitUpTo(ctx, t, 20*time.Second, fmt.Sprintf("node %d to lead again", leader.ID), func() (bool, string) {
			v, err := c.partitionFromAny(ctx, topic, 0)
			if err != nil {
				return false, err.Error()
			}
			agreed = v
			return v.Leader == leader.ID && len(v.ISR) == len(v.Replicas), v.String()
		})
		checkLog(fmt.Sprintf("log read from the old leader %d after it leads again", leader.ID))
		t.Logf("old leader %d leads again at epoch %d; its log holds the acknowledged records only", leader.ID, agreed.Epoch)
	} else {
		t.Logf("old leader %d is not the preferred replica of %v (or leads already): its log is not read directly", leader.ID, agreed.Replicas)
	}
	if n := c.Net.Unattributed(); n > 0 {
		t.Logf("%d inter-node connections came from an address that is no node's: those brokers do not bind their source address, so the isolation only cut traffic towards node %d", n, leader.ID)
	}
	c.checkNoSplitBrain()
}

// TestClusterFullRestart stops every node (SIGTERM) and starts them all
// again: the cluster must come back as the same cluster (cluster id,
// topics with their ids and configs, every record, committed offsets)
// from what each node kept on disk: its Raft log and snapshot, and its
// partition logs.
func TestClusterFullRestart(t *testing.T) {
	const (
		topic      = "restart"
		partitions = 3
		group      = "restart-group"
	)
	c := startCluster(t, 3)
	ctx := testContext(t, 120*time.Second)
	adm := c.Admin()
	createReplicatedTopic(ctx, t, adm, topic, partitions, 3, map[string]*string{"retention.ms": str("123456789")})
	c.waitFullISR(ctx, 30*time.Second, topic)

	recs := makeRecords("restart", 300, partitions, 42)
	prod := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var krs []*kgo.Record
	for _, r := range recs {
		krs = append(krs, toKgo(topic, r))
	}
	if err := prod.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	commit := kadm.Offsets{}
	wantCommitted := map[int32]int64{}
	for p := range int32(partitions) {
		wantCommitted[p] = int64(10 + p)
		commit.Add(kadm.Offset{Topic: topic, Partition: p, At: wantCommitted[p], LeaderEpoch: -1})
	}
	if resps, err := adm.CommitOffsets(ctx, group, commit); err != nil || resps.Error() != nil {
		t.Fatalf("commit offsets: %v %v", err, resps.Error())
	}
	if ok, why := c.committedOffsets(ctx, 10*time.Second, group, topic, wantCommitted); !ok {
		t.Fatalf("committed offsets: %s", why)
	}

	before, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if before.Cluster == "" {
		t.Errorf("empty cluster id")
	}
	topicID := before.Topics[topic].ID

	stopped := time.Now()
	c.TerminateAll(45 * time.Second)
	t.Logf("all nodes stopped in %v", time.Since(stopped).Round(time.Millisecond))
	restarted := time.Now()
	c.StartAll()
	c.waitFullISR(ctx, 30*time.Second, topic)
	t.Logf("cluster back in %v", time.Since(restarted).Round(time.Millisecond))

	// Every node says it is the same cluster.
	for _, nd := range c.Nodes {
		resp, err := c.Metadata(ctx, nd, topic)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ClusterID == nil || *resp.ClusterID != before.Cluster {
			t.Errorf("node %d: cluster id %v after the restart, want %q", nd.ID, resp.ClusterID, before.Cluster)
		}
		if len(resp.Topics) != 1 || resp.Topics[0].TopicID != [16]byte(topicID) || len(resp.Topics[0].Partitions) != partitions {
			t.Errorf("node %d: topic %s after the restart: %+v, want id %v with %d partitions", nd.ID, topic, resp.Topics, topicID, partitions)
		}
	}
	if got, _ := topicConfig(ctx, t, adm, topic, "retention.ms"); got != "123456789" {
		t.Errorf("retention.ms %q after the restart, want 123456789", got)
	}
	if ok, why := c.committedOffsets(ctx, 20*time.Second, group, topic, wantCommitted); !ok {
		t.Errorf("committed offsets after the restart: %s", why)
	}

	ends := endOffsets(ctx, t, adm, topic)
	got := readKgo(ctx, t, c.Nodes[0].brokerProc, topic, zeros(partitions), ends)
	var gotRecs []rec
	for p := range int32(partitions) {
		for i, r := range got[p] {
			if r.Offset != int64(i) {
				t.Errorf("partition %d: record %d at offset %d", p, i, r.Offset)
			}
			gotRecs = append(gotRecs, r.rec)
		}
	}
	samePerPartition(t, "records after the full restart", recs, gotRecs)

	// And it still takes writes.
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := prod.ProduceSync(pctx, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("after-restart")}).FirstErr(); err != nil {
		t.Errorf("produce after the restart: %v", err)
	}
	c.checkNoSplitBrain()
}
