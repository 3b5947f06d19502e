package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestClusterVoters(t *testing.T) {
	got := clusterVoters([]int32{1, 2, 3}, []string{"127.0.0.1:9301", "127.0.0.1:9302", "127.0.0.1:9303"})
	if want := "1@127.0.0.1:9301,2@127.0.0.1:9302,3@127.0.0.1:9303"; got != want {
		t.Errorf("clusterVoters = %q, want %q", got, want)
	}
}

func TestClusterSettings(t *testing.T) {
	got := clusterSettings(3*time.Second, 500*time.Millisecond)
	want := []string{"broker.session.timeout.ms=3000", "broker.heartbeat.interval.ms=500", "default.replication.factor=3", "min.insync.replicas=2"}
	if !slices.Equal(got, want) {
		t.Errorf("clusterSettings = %q, want %q", got, want)
	}
}

// sampleMetadata is a Metadata answer from a cluster of brokers 3, 1 and
// 2 (listed out of order, as a broker may), controller 2: topic "t" with
// partition 0 fully in sync, partition 1 without a leader, and "gone"
// unknown.
func sampleMetadata() *kmsg.MetadataResponse {
	resp := kmsg.NewPtrMetadataResponse()
	resp.ControllerID = 2
	for _, id := range []int32{3, 1, 2} {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = id
		resp.Brokers = append(resp.Brokers, b)
	}
	part := func(id, leader int32, isr []int32, code int16) kmsg.MetadataResponseTopicPartition {
		p := kmsg.NewMetadataResponseTopicPartition()
		p.Partition, p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, p.ErrorCode = id, leader, 4, []int32{1, 2, 3}, isr, code
		return p
	}
	topic := kmsg.NewMetadataResponseTopic()
	topic.Topic = kmsg.StringPtr("t")
	topic.Partitions = []kmsg.MetadataResponseTopicPartition{
		part(1, -1, []int32{2}, kerr.LeaderNotAvailable.Code),
		part(0, 1, []int32{1, 2, 3}, 0),
	}
	gone := kmsg.NewMetadataResponseTopic()
	gone.Topic = kmsg.StringPtr("gone")
	gone.ErrorCode = kerr.UnknownTopicOrPartition.Code
	resp.Topics = []kmsg.MetadataResponseTopic{topic, gone}
	return resp
}

func TestParseMetadata(t *testing.T) {
	m := parseMetadata(sampleMetadata())
	if m.Controller != 2 || !slices.Equal(m.Brokers, []int32{1, 2, 3}) {
		t.Errorf("controller %d, brokers %v; want 2, [1 2 3]", m.Controller, m.Brokers)
	}
	p, ok := m.partition("t", 0)
	if !ok || p.Leader != 1 || p.Epoch != 4 || !slices.Equal(p.ISR, []int32{1, 2, 3}) {
		t.Errorf("t-0 = %+v, %v; want leader 1, epoch 4, isr [1 2 3]", p, ok)
	}
	// A partition or topic answered with an error is not described.
	if _, ok := m.partition("t", 1); ok {
		t.Error("t-1 has LEADER_NOT_AVAILABLE but partition says ok")
	}
	if _, ok := m.partition("gone", 0); ok {
		t.Error("an unknown topic's partition says ok")
	}
	if _, ok := m.partition("t", 7); ok {
		t.Error("a partition the answer lacks says ok")
	}
	if !errors.Is(m.Topics["gone"].Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("gone: error %v, want UNKNOWN_TOPIC_OR_PARTITION", m.Topics["gone"].Err)
	}
}

func TestMetadataInSync(t *testing.T) {
	m := parseMetadata(sampleMetadata())
	tests := []struct {
		topic      string
		partitions int32
		rf         int
		want       bool
	}{
		{"t", 1, 3, true},
		{"t", 1, 2, false}, // three in the ISR is not the two asked for
		{"t", 2, 3, false}, // partition 1 has no leader
		{"gone", 1, 3, false},
		{"absent", 1, 3, false},
	}
	for _, tt := range tests {
		if got := m.inSync(tt.topic, tt.partitions, tt.rf); got != tt.want {
			t.Errorf("inSync(%s, %d, %d) = %v, want %v", tt.topic, tt.partitions, tt.rf, got, tt.want)
		}
	}
}

func TestMetadataDescribe(t *testing.T) {
	m := parseMetadata(sampleMetadata())
	got := m.describe("t")
	want := "p0 leader 1 epoch 4 replicas [1 2 3] isr [1 2 3]; p1 leader -1 epoch 4 replicas [1 2 3] isr [2] error " + kerr.LeaderNotAvailable.Error()
	if got != want {
		t.Errorf("describe(t) =\n%s\nwant\n%s", got, want)
	}
	if got := m.describe("absent"); got != "topic not listed" {
		t.Errorf("describe(absent) = %q", got)
	}
	if got := m.describe("gone"); got != kerr.UnknownTopicOrPartition.Error() {
		t.Errorf("describe(gone) = %q", got)
	}
}

func TestFailoverVictim(t *testing.T) {
	ids := []int32{1, 2, 3}
	// Every second round kills the controller; the others take the other
	// brokers in turn.
	for round, want := range []int32{1, 2, 3, 2, 1, 2} {
		got, ok := failoverVictim(round, 2, ids)
		if !ok || got != want {
			t.Errorf("round %d: victim %d (ok %v), want %d", round, got, ok, want)
		}
	}
	if _, ok := failoverVictim(0, 9, ids); ok {
		t.Error("a controller outside the cluster gave a victim")
	}
}

func TestAssignLeaderFirst(t *testing.T) {
	if got := assignLeaderFirst(2, []int32{1, 2, 3}); !slices.Equal(got, []int32{2, 1, 3}) {
		t.Errorf("assignLeaderFirst(2) = %v, want [2 1 3]", got)
	}
}

func TestFailoverWatch(t *testing.T) {
	base := time.Now()
	rec := func(start time.Time) *kgo.Record {
		return &kgo.Record{Context: &slot{Context: context.Background(), start: start}}
	}
	w := &failoverWatch{}
	acked := w.arm()
	// Armed but not started: the leader is not dead yet, nothing counts.
	w.promise(rec(base.Add(time.Millisecond)), nil)
	w.start(base.Add(10 * time.Millisecond))
	// Produced before the kill: the old leader may have acknowledged it.
	w.promise(rec(base.Add(5*time.Millisecond)), nil)
	w.promise(rec(base.Add(20*time.Millisecond)), errors.New("boom"))
	select {
	case <-acked:
		t.Fatal("first ack set by a record produced before the kill or a failed one")
	default:
	}
	w.promise(rec(base.Add(30*time.Millisecond)), nil)
	select {
	case <-acked:
	default:
		t.Fatal("a record produced after the kill was acknowledged, but the watch did not fire")
	}
	_, _, first, _ := w.snapshot()
	w.promise(rec(base.Add(40*time.Millisecond)), nil) // a later ack must not move it nor close twice
	ackedN, failed, first2, firstErr := w.snapshot()
	if first.IsZero() || !first2.Equal(first) {
		t.Errorf("first ack %v then %v; want set once", first, first2)
	}
	if ackedN != 4 || failed != 1 || firstErr == nil || firstErr.Error() != "boom" {
		t.Errorf("acked %d, failed %d, first error %v; want 4, 1, boom", ackedN, failed, firstErr)
	}
	// Re-arming waits for a new first ack.
	acked = w.arm()
	select {
	case <-acked:
		t.Fatal("a re-armed watch fired at once")
	default:
	}
}

func TestFailoverTally(t *testing.T) {
	tests := []struct {
		tally       FailoverTally
		lost, extra int64
		says        string
	}{
		{FailoverTally{Acked: 100, Partitions: 3, EndOffset: 100}, 0, 0, "no acknowledged record lost"},
		// A failed record may still have been written.
		{FailoverTally{Acked: 100, Failed: 2, Partitions: 3, EndOffset: 102}, 0, 2, "no acknowledged record lost"},
		{FailoverTally{Acked: 100, Partitions: 3, EndOffset: 103}, 0, 3, "3 more records than acknowledged or failed (duplicates)"},
		{FailoverTally{Acked: 100, Failed: 5, Partitions: 3, EndOffset: 97}, 3, 0, "3 ACKNOWLEDGED RECORDS LOST"},
	}
	one := FailoverTally{Acked: 10, Partitions: 1, EndOffset: 10}
	if got := one.describe(); got != "10 records acknowledged, 0 failed; its partition ends at offset 10: no acknowledged record lost" {
		t.Errorf("one partition: describe() = %q", got)
	}
	for _, tt := range tests {
		if tt.tally.Lost() != tt.lost || tt.tally.Extra() != tt.extra {
			t.Errorf("%+v: lost %d extra %d, want %d %d", tt.tally, tt.tally.Lost(), tt.tally.Extra(), tt.lost, tt.extra)
		}
		if got := tt.tally.describe(); !strings.Contains(got, tt.says) || !strings.Contains(got, "its 3 partitions") {
			t.Errorf("%+v: describe() = %q, want it to say %q", tt.tally, got, tt.says)
		}
	}
}

// sampleCluster has RF=1 and RF=3 runs of both kinds, two failovers and
// a third that failed.
func sampleCluster() *ClusterResult {
	run := func(rf int16, rate int, mbps float64, p99 time.Duration) ClusterRun {
		producers := 4
		if rate > 0 {
			producers = 1
		}
		p := ProduceResult{RecordSize: 1024, Acks: "all", Producers: producers, TargetRate: rate, Bytes: int64(mbps * 1e6),
			Records: int64(mbps * 1e6 / 1024), Elapsed: time.Second, Latency: Latency{P50: p99 / 4, P99: p99, P999: 2 * p99, Max: 3 * p99}}
		p.finish()
		return ClusterRun{RF: rf, FirstWrite: 250 * time.Millisecond, Produce: p}
	}
	return &ClusterResult{
		Nodes: 3, Partitions: 8, MinISR: 2, SessionTimeout: 3 * time.Second, Heartbeat: 500 * time.Millisecond,
		Settings: clusterSettings(3*time.Second, 500*time.Millisecond),
		Runs: []ClusterRun{
			run(1, 10000, 10.24, 2*time.Millisecond), run(3, 10000, 10.24, 5*time.Millisecond),
			run(1, 0, 400, 100*time.Millisecond), run(3, 0, 100, 300*time.Millisecond),
		},
		FailoverRate: 500, FailoverRecordSize: 100,
		Failovers: []FailoverResult{
			{Killed: 1, NewLeader: 2, NewLeaderEpoch: 1, FirstAck: 3100 * time.Millisecond, MetadataLeader: 2950 * time.Millisecond, Rejoin: 1400 * time.Millisecond},
			{Killed: 2, KilledController: true, NewLeader: 3, FirstAck: 5600 * time.Millisecond, MetadataLeader: 5500 * time.Millisecond, Rejoin: 2800 * time.Millisecond, Failed: 2},
			{Killed: 3, Error: "no write produced after the kill of node 3 was acknowledged within 23s"},
		},
		FailoverTally: &FailoverTally{Acked: 9000, Failed: 2, Partitions: 3, EndOffset: 9001},
		CPU:           CPUUse{Wall: 50 * time.Second, Broker: 24 * time.Second, Bench: 8 * time.Second},
		Shutdowns:     []ShutdownInfo{{Elapsed: 300 * time.Millisecond, Clean: true, Exit: "exit 0"}},
		Errors:        []string{"failover 3: no write produced after the kill of node 3 was acknowledged within 23s"},
	}
}

func TestCompareRF(t *testing.T) {
	got := compareRF(sampleCluster().Runs)
	want := []string{
		"RF=3 against RF=1, 1024B at 10000/s: p99 2.5x",
		"RF=3 against RF=1, 1024B at max: throughput 25%, p99 3.0x",
	}
	if !slices.Equal(got, want) {
		t.Errorf("compareRF =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An RF=3 run without its RF=1 counterpart (that run failed to start)
	// is not compared with another kind.
	if got := compareRF(sampleCluster().Runs[1:]); len(got) != 1 || !strings.Contains(got[0], "at max") {
		t.Errorf("compareRF without the RF=1 fixed-rate run = %q", got)
	}
}

func TestWriteTableCluster(t *testing.T) {
	// -cluster-only: no limits, no modes, the cluster section and its notes.
	r := &Report{Machine: Machine{CPUs: 2}, Cluster: sampleCluster()}
	var buf bytes.Buffer
	if err := WriteTable(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	flat := strings.Join(strings.Fields(out), " ")
	for _, unwanted := range []string{"Machine limits", "Produce (", "Cold read ("} {
		if strings.Contains(out, unwanted) {
			t.Errorf("cluster-only table has %q:\n%s", unwanted, out)
		}
	}
	for _, want := range []string{
		"Cluster (3 brokers on this machine",
		"min.insync.replicas=2; 8 partitions per topic",
		"RF=3 against RF=1, 1024B at max: throughput 25%, p99 3.0x",
		"broker.session.timeout.ms=3000 (Kafka's default is 9000; lowered here",
		"broker.heartbeat.interval.ms=500",
		"failover producer: 9000 records acknowledged, 2 failed; the end offsets of its 3 partitions add up to 9001: no acknowledged record lost",
		"cluster broker settings: broker.session.timeout.ms=3000 broker.heartbeat.interval.ms=500 default.replication.factor=3 min.insync.replicas=2",
		"cluster CPU over 50s wall: brokers 24s, bench 8s (of 1m40s available)",
		"RF=1 10000/s 250.00ms",
		"cluster broker 1 of 1 SIGTERM -> exit 0 in 300ms",
		"cluster error: failover 3: no write produced",
	} {
		if !strings.Contains(flat, strings.Join(strings.Fields(want), " ")) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	rows := map[string][]string{
		"1 1024B 10000/s": {"10.2", "2.00ms"},
		"3 1024B 10000/s": {"10.2", "5.00ms"},
		"3 1024B max 4":   {"100.0", "300.00ms"},
		// round, killed, was controller, new leader, metadata, first ack,
		// rejoin, failed records, error
		"1 1 no 2 2.95s 3.10s 1.40s 0 -":  nil,
		"2 2 yes 3 5.50s 5.60s 2.80s 2 -": nil,
		"3 3 no - - - - - see notes":      nil,
	}
	checkRows(t, out, rows)
}

func TestWriteTableClusterFailedStart(t *testing.T) {
	// A cluster that never formed prints its settings and error, and no
	// empty tables.
	c := &ClusterResult{Nodes: 3, Partitions: 8, MinISR: 2, SessionTimeout: 3 * time.Second, Heartbeat: 500 * time.Millisecond,
		Settings: clusterSettings(3*time.Second, 500*time.Millisecond), Errors: []string{"start cluster: waiting for 3 brokers"}}
	var buf bytes.Buffer
	if err := WriteTable(&buf, &Report{Cluster: c}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, "RF  size") || strings.Contains(out, "Leader failover") {
		t.Errorf("empty cluster tables printed:\n%s", out)
	}
	if !strings.Contains(out, "cluster error: start cluster: waiting for 3 brokers") {
		t.Errorf("table lacks the start error:\n%s", out)
	}
}

func TestWriteJSONCluster(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, &Report{Cluster: sampleCluster()}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Cluster struct {
			SessionTimeout int64 `json:"broker_session_timeout_ns"`
			Runs           []struct {
				RF      int `json:"replication_factor"`
				Produce struct {
					Latency struct {
						P99 int64 `json:"p99_ns"`
					} `json:"latency"`
				} `json:"produce"`
			} `json:"runs"`
			Failovers []struct {
				FirstAck   int64 `json:"kill_to_first_ack_ns"`
				Controller bool  `json:"killed_controller"`
			} `json:"failovers"`
			Tally struct {
				EndOffset int64 `json:"end_offset"`
			} `json:"failover_tally"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	c := got.Cluster
	if c.SessionTimeout != int64(3*time.Second) || len(c.Runs) != 4 || c.Runs[1].RF != 3 || c.Runs[1].Produce.Latency.P99 != int64(5*time.Millisecond) ||
		len(c.Failovers) != 3 || c.Failovers[0].FirstAck != int64(3100*time.Millisecond) || !c.Failovers[1].Controller || c.Tally.EndOffset != 9001 {
		t.Errorf("unexpected JSON: %+v", c)
	}
}

func TestValidateCluster(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		ok   bool
	}{
		{"defaults", func(*Config) {}, true},
		{"cluster only", func(c *Config) { c.ClusterOnly = true }, true},
		{"cluster and cold only", func(c *Config) { c.ClusterOnly, c.ColdOnly = true, true }, true},
		{"cluster only with an external broker", func(c *Config) { c.ClusterOnly, c.Brokers = true, []string{"127.0.0.1:9092"} }, false},
		// With --brokers the full run leaves the cluster out.
		{"external broker", func(c *Config) { c.Brokers = []string{"127.0.0.1:9092"} }, true},
		{"no duration", func(c *Config) { c.ClusterDuration = 0 }, false},
		{"negative failovers", func(c *Config) { c.ClusterFailovers = -1 }, false},
		{"no failovers", func(c *Config) { c.ClusterFailovers = 0 }, true},
		{"heartbeat not below the session timeout", func(c *Config) { c.ClusterHeartbeat = c.ClusterSessionTimeout }, false},
		{"sub-millisecond heartbeat", func(c *Config) { c.ClusterHeartbeat = time.Microsecond }, false},
		{"disabled, bad settings ignored", func(c *Config) { c.Cluster, c.ClusterDuration = false, 0 }, true},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.edit(&c)
		if err := c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	low, high, err := parsePortRange("32768\t60999\n")
	if err != nil || low != 32768 || high != 60999 {
		t.Errorf("parsePortRange = %d, %d, %v; want 32768, 60999", low, high, err)
	}
	for _, bad := range []string{"", "32768", "a b", "60999 32768", "0 100", "1024 70000"} {
		if _, _, err := parsePortRange(bad); err == nil {
			t.Errorf("parsePortRange(%q) accepted", bad)
		}
	}
}

func TestStablePort(t *testing.T) {
	// Ports a killed node gets back must lie below the ephemeral range and
	// differ from each other.
	taken := map[int]bool{}
	for range 6 {
		p, err := stablePort(32768, taken)
		if err != nil {
			t.Fatal(err)
		}
		if p < stablePortFloor || p >= 32768 {
			t.Errorf("port %d outside [%d, 32768)", p, stablePortFloor)
		}
	}
	if len(taken) != 6 {
		t.Errorf("%d distinct ports, want 6: %v", len(taken), taken)
	}
	// No room below the range: a port the kernel picks.
	if p, err := stablePort(stablePortFloor+10, map[int]bool{}); err != nil || p == 0 {
		t.Errorf("fallback: port %d, %v", p, err)
	}
}
