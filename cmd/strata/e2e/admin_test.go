package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The admin test starts its broker with one static broker default so that
// DescribeConfigs has all three sources to show.
const staticSegmentBytes = "536870912"

func TestAdmin(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "--set", "log.segment.bytes="+staticSegmentBytes)
	ctx := testContext(t, 2*time.Minute)
	adm := b.Admin()
	cl := b.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))

	t.Run("CreateTopics", func(t *testing.T) { adminCreateTopics(ctx, t, adm) })
	t.Run("Configs", func(t *testing.T) { adminConfigs(ctx, t, adm) })
	t.Run("CreatePartitions", func(t *testing.T) { adminCreatePartitions(ctx, t, adm) })
	t.Run("ListOffsets", func(t *testing.T) { adminListOffsets(ctx, t, adm, cl) })
	t.Run("DeleteRecords", func(t *testing.T) { adminDeleteRecords(ctx, t, adm, cl) })
	t.Run("DescribeLogDirs", func(t *testing.T) { adminLogDirs(ctx, t, adm, b.DataDir) })
	t.Run("DescribeCluster", func(t *testing.T) { adminDescribeCluster(ctx, t, cl, b.Addr) })
	t.Run("Groups", func(t *testing.T) { adminGroups(ctx, t, b, adm) })
	t.Run("DeleteTopics", func(t *testing.T) { adminDeleteTopics(ctx, t, adm) })
}

func str(s string) *string { return &s }

func adminCreateTopics(ctx context.Context, t *testing.T, adm *kadm.Client) {
	// validate-only creates nothing.
	v, err := adm.ValidateCreateTopics(ctx, 3, 1, nil, "adm-validate")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := v.On("adm-validate", nil); r.Err != nil {
		t.Fatalf("validate-only create: %v", r.Err)
	}
	if topics, err := adm.ListTopics(ctx); err != nil || topics.Has("adm-validate") {
		t.Fatalf("validate-only create made the topic (err %v)", err)
	}

	r, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": str("86400000"), "cleanup.policy": str("delete")}, "adm")
	if err != nil || r.Err != nil {
		t.Fatalf("create adm: %v / %v", err, r.Err)
	}
	if r.ID == (kadm.TopicID{}) {
		t.Error("CreateTopics returned no topic id")
	}
	topics, err := adm.ListTopics(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	td := topics["adm"]
	if td.Err != nil || len(td.Partitions) != 2 || td.ID != r.ID {
		t.Fatalf("metadata of adm: err %v, %d partitions, id %v (created %v)", td.Err, len(td.Partitions), td.ID, r.ID)
	}
	for _, p := range td.Partitions {
		if p.Leader != 1 || p.Err != nil || !slices.Equal(p.Replicas, []int32{1}) || !slices.Equal(p.ISR, []int32{1}) {
			t.Errorf("partition %d: leader %d replicas %v isr %v err %v", p.Partition, p.Leader, p.Replicas, p.ISR, p.Err)
		}
	}

	bad := []struct {
		name       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
	}{
		{"exists", "adm", 2, 1, nil, kerr.TopicAlreadyExists},
		{"bad name", "bad name!", 1, 1, nil, kerr.InvalidTopicException},
		{"dot name", ".", 1, 1, nil, kerr.InvalidTopicException},
		{"long name", strings.Repeat("x", 250), 1, 1, nil, kerr.InvalidTopicException},
		{"zero partitions", "adm-zero", 0, 1, nil, kerr.InvalidPartitions},
		{"replication 3", "adm-rf3", 1, 3, nil, kerr.InvalidReplicationFactor},
		{"bad config value", "adm-badcfg", 1, 1, map[string]*string{"retention.ms": str("soon")}, kerr.InvalidConfig},
		{"unknown config", "adm-unknowncfg", 1, 1, map[string]*string{"no.such.config": str("1")}, kerr.InvalidConfig},
	}
	for _, tc := range bad {
		r, err := adm.CreateTopic(ctx, tc.partitions, tc.rf, tc.configs, tc.topic)
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("create %s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	topics, err = adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := topics.Names(); !slices.Equal(got, []string{"adm"}) {
		t.Errorf("topics after failed creates: %v, want [adm]", got)
	}
}

// topicConfig returns a topic config's value and source.
func topicConfig(ctx context.Context, t *testing.T, adm *kadm.Client, topic, key string) (string, kmsg.ConfigSource) {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs %s: %v / %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c.MaybeValue(), c.Source
		}
	}
	t.Fatalf("describe configs %s lacks %s", topic, key)
	return "", 0
}

func checkConfig(ctx context.Context, t *testing.T, adm *kadm.Client, topic, key, value string, source kmsg.ConfigSource) {
	t.Helper()
	v, s := topicConfig(ctx, t, adm, topic, key)
	if v != value || s != source {
		t.Errorf("%s %s = %q (%v), want %q (%v)", topic, key, v, s, value, source)
	}
}

func adminConfigs(ctx context.Context, t *testing.T, adm *kadm.Client) {
	// The three sources: set on the topic, a static broker default
	// (--set log.segment.bytes), Kafka's default.
	checkConfig(ctx, t, adm, "adm", "retention.ms", "86400000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(ctx, t, adm, "adm", "segment.bytes", staticSegmentBytes, kmsg.ConfigSourceStaticBrokerConfig)
	checkConfig(ctx, t, adm, "adm", "max.message.bytes", "1048588", kmsg.ConfigSourceDefaultConfig)
	checkConfig(ctx, t, adm, "adm", "retention.bytes", "-1", kmsg.ConfigSourceDefaultConfig)

	// IncrementalAlterConfigs: set one, delete one (back to the default).
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.ms", Value: str("3600000")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "adm")
	if err == nil {
		_, err = resps.On("adm", func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatalf("incremental alter: %v", err)
	}
	checkConfig(ctx, t, adm, "adm", "segment.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(ctx, t, adm, "adm", "retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig)

	// A bad value is refused and changes nothing.
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "segment.ms", Value: str("-5")},
	}, "adm")
	if err == nil {
		_, err = resps.On("adm", func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("incremental alter with a bad value: got %v, want INVALID_CONFIG", err)
	}
	checkConfig(ctx, t, adm, "adm", "segment.ms", "3600000", kmsg.ConfigSourceDynamicTopicConfig)

	// AlterConfigs (not incremental) replaces the whole set.
	resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{
		{Name: "max.message.bytes", Value: str("2000000")},
	}, "adm")
	if err == nil {
		_, err = resps.On("adm", func(r *kadm.AlterConfigsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatalf("alter configs: %v", err)
	}
	checkConfig(ctx, t, adm, "adm", "max.message.bytes", "2000000", kmsg.ConfigSourceDynamicTopicConfig)
	checkConfig(ctx, t, adm, "adm", "segment.ms", "604800000", kmsg.ConfigSourceDefaultConfig)
	checkConfig(ctx, t, adm, "adm", "cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
}

func adminCreatePartitions(ctx context.Context, t *testing.T, adm *kadm.Client) {
	if _, err := adm.ValidateCreatePartitions(ctx, 5, "adm"); err != nil {
		t.Fatal(err)
	}
	resps, err := adm.CreatePartitions(ctx, 2, "adm")
	if err == nil {
		_, err = resps.On("adm", func(r *kadm.CreatePartitionsResponse) error { return r.Err })
	}
	if err != nil {
		t.Fatalf("create partitions: %v", err)
	}
	topics, err := adm.ListTopics(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topics["adm"].Partitions); n != 4 {
		t.Fatalf("adm has %d partitions after adding 2 to 2 (validate-only must not add)", n)
	}
	resps, err = adm.UpdatePartitions(ctx, 3, "adm")
	if err == nil {
		_, err = resps.On("adm", func(r *kadm.CreatePartitionsResponse) error { return r.Err })
	}
	if !errors.Is(err, kerr.InvalidPartitions) {
		t.Errorf("shrinking partitions: got %v, want INVALID_PARTITIONS", err)
	}
}

// listOffset issues one raw ListOffsets for topic/0 at ts.
func listOffset(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = 0
	rp.Timestamp = ts
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("ListOffsets response shape: %+v", resp)
	}
	return resp.Topics[0].Partitions[0]
}

// adminTimestamps are the CreateTime of the 10 records ListOffsets looks
// at: one second apart, except record 5, which carries the maximum.
var adminBase = time.Now().Add(-time.Hour).Truncate(time.Second)

func adminTimestamp(i int) time.Time {
	if i == 5 {
		return adminBase.Add(60 * time.Second)
	}
	return adminBase.Add(time.Duration(i) * time.Second)
}

func adminListOffsets(ctx context.Context, t *testing.T, adm *kadm.Client, cl *kgo.Client) {
	// One batch per record, so the time index has one entry per record.
	for i := range 10 {
		r := &kgo.Record{Topic: "adm", Partition: 0, Value: fmt.Appendf(nil, "ts %d", i), Timestamp: adminTimestamp(i)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	ms := func(tm time.Time) int64 { return tm.UnixMilli() }
	tests := []struct {
		name       string
		ts         int64
		wantOffset int64
		wantTs     int64
	}{
		{"earliest", -2, 0, -1},
		{"latest", -1, 10, -1},
		{"max timestamp", -3, 5, ms(adminTimestamp(5))},
		{"before all", ms(adminBase) - 5000, 0, ms(adminBase)},
		{"exact", ms(adminTimestamp(3)), 3, ms(adminTimestamp(3))},
		{"between", ms(adminTimestamp(3)) + 500, 4, ms(adminTimestamp(4))},
		{"only the max is later", ms(adminTimestamp(9)) + 500, 5, ms(adminTimestamp(5))},
		{"after all", ms(adminTimestamp(5)) + 1, -1, -1},
	}
	for _, tc := range tests {
		p := listOffset(ctx, t, cl, "adm", tc.ts)
		if p.ErrorCode != 0 || p.Offset != tc.wantOffset || p.Timestamp != tc.wantTs {
			t.Errorf("ListOffsets %s (%d): error %d offset %d timestamp %d, want offset %d timestamp %d",
				tc.name, tc.ts, p.ErrorCode, p.Offset, p.Timestamp, tc.wantOffset, tc.wantTs)
		}
	}

	// The kadm helpers over the same.
	start, err := adm.ListStartOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	for p := range int32(4) {
		s, _ := start.Lookup("adm", p)
		e, _ := end.Lookup("adm", p)
		wantEnd := int64(0)
		if p == 0 {
			wantEnd = 10
		}
		if s.Err != nil || e.Err != nil || s.Offset != 0 || e.Offset != wantEnd {
			t.Errorf("adm/%d: start %d (%v) end %d (%v), want 0 and %d", p, s.Offset, s.Err, e.Offset, e.Err, wantEnd)
		}
	}
	maxTs, err := adm.ListMaxTimestampOffsets(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := maxTs.Lookup("adm", 0); o.Offset != 5 {
		t.Errorf("max timestamp offset %d, want 5", o.Offset)
	}

	// OffsetForLeaderEpoch for the current epoch is the end offset.
	topics, err := adm.ListTopics(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	epoch := topics["adm"].Partitions[0].LeaderEpoch
	ofe, err := adm.OffsetForLeaderEpoch(ctx, kadm.OffsetForLeaderEpochRequest{"adm": {0: epoch}})
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := ofe["adm"][0]; !ok || o.Err != nil || o.EndOffset != 10 || o.LeaderEpoch != epoch {
		t.Errorf("OffsetForLeaderEpoch(%d): %+v, want end 10", epoch, o)
	}
}

func adminDeleteRecords(ctx context.Context, t *testing.T, adm *kadm.Client, cl *kgo.Client) {
	var os kadm.Offsets
	os.AddOffset("adm", 0, 3, -1)
	resps, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := resps.Lookup("adm", 0); !ok || r.Err != nil || r.LowWatermark != 3 {
		t.Fatalf("DeleteRecords before 3: %+v", r)
	}
	if p := listOffset(ctx, t, cl, "adm", -2); p.Offset != 3 {
		t.Errorf("earliest after DeleteRecords: %d, want 3", p.Offset)
	}
	// Reading from the start begins at the new log start offset.
	rd := kgo.Record{}
	c, err := kgo.NewClient(append(cl.Opts(), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		"adm": {0: kgo.NewOffset().AtStart()}}), kgo.FetchMaxWait(200*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fs := c.PollRecords(ctx, 1)
	if err := fs.Err(); err != nil {
		t.Fatal(err)
	}
	fs.EachRecord(func(r *kgo.Record) { rd = *r })
	if rd.Offset != 3 || string(rd.Value) != "ts 3" {
		t.Errorf("first record after DeleteRecords: offset %d %q, want 3 \"ts 3\"", rd.Offset, rd.Value)
	}

	os = nil
	os.AddOffset("adm", 0, 100, -1)
	resps, err = adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.Lookup("adm", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("DeleteRecords past the end: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
}

func adminLogDirs(ctx context.Context, t *testing.T, adm *kadm.Client, dataDir string) {
	all, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	dirs := all[1]
	if len(dirs) == 0 {
		t.Fatalf("no log dirs for broker 1: %+v", all)
	}
	abs, _ := filepath.Abs(dataDir)
	found, remote := false, false
	for _, d := range dirs.Sorted() {
		if d.Err != nil {
			t.Errorf("log dir %s: %v", d.Dir, d.Err)
		}
		if strings.HasPrefix(d.Dir, "remote:") {
			// The remote tier is listed as a second dir with remote sizes;
			// nothing of this topic was tiered yet.
			remote = true
			for _, p := range []int32{0, 1, 2, 3} {
				if rp, ok := d.Topics.Lookup("adm", p); !ok || rp.Size != 0 {
					t.Errorf("remote dir %s: adm/%d present %v size %d, want present with 0 bytes", d.Dir, p, ok, rp.Size)
				}
			}
			continue
		}
		if !strings.HasPrefix(d.Dir, abs) {
			t.Errorf("log dir %s is not under the data dir %s", d.Dir, abs)
		}
		if p, ok := d.Topics.Lookup("adm", 0); ok {
			found = true
			if p.Size <= 0 {
				t.Errorf("adm/0 size %d, want > 0", p.Size)
			}
		}
		for _, p := range []int32{1, 2, 3} {
			if _, ok := d.Topics.Lookup("adm", p); !ok {
				t.Errorf("log dir %s lacks adm/%d", d.Dir, p)
			}
		}
	}
	if !found {
		t.Error("no log dir holds adm/0")
	}
	if !remote {
		t.Error("no remote log dir listed")
	}
}

func adminDescribeCluster(ctx context.Context, t *testing.T, cl *kgo.Client, addr string) {
	resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || resp.ClusterID == "" || resp.ControllerID != 1 || len(resp.Brokers) != 1 {
		t.Fatalf("DescribeCluster: %+v", resp)
	}
	br := resp.Brokers[0]
	if got := fmt.Sprintf("%s:%d", br.Host, br.Port); br.NodeID != 1 || got != addr {
		t.Errorf("DescribeCluster broker %d at %s, want 1 at %s", br.NodeID, got, addr)
	}
}

func adminGroups(ctx context.Context, t *testing.T, b *brokerProc, adm *kadm.Client) {
	const group = "adm-group"
	member, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics("adm"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	// Consume partition 0 (7 records left after DeleteRecords) and commit.
	got := 0
	for got < 7 {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 7: %v", got, err)
		}
		got += fs.NumRecords()
	}
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	view := waitBalanced(ctx, t, adm, group, "adm", 1, 4)
	_ = view

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := listed[group]; !ok || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Errorf("ListGroups: %+v", listed)
	}

	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup("adm", 0); !ok || o.At != 10 {
		t.Errorf("committed adm/0: %+v, want 10", o)
	}

	// A live group can be neither deleted nor lose offsets of a topic it
	// is subscribed to.
	dg, err := adm.DeleteGroup(ctx, group)
	if err == nil {
		err = dg.Err
	}
	if !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroups on a live group: %v, want NON_EMPTY_GROUP", err)
	}
	var ts kadm.TopicsSet
	ts.Add("adm", 0)
	del, err := adm.DeleteOffsets(ctx, group, ts)
	if err == nil {
		err = del["adm"][0]
	}
	if !errors.Is(err, kerr.GroupSubscribedToTopic) {
		t.Errorf("OffsetDelete while subscribed: %v, want GROUP_SUBSCRIBED_TO_TOPIC", err)
	}

	member.Close() // leaves the group
	waitFor(ctx, t, "group to be empty", func() (bool, string) {
		v, err := describeGroup(ctx, adm, group, "adm")
		if err != nil {
			return false, err.Error()
		}
		return v.State == "Empty" && len(v.Members) == 0, fmt.Sprintf("%+v", v)
	})
	del, err = adm.DeleteOffsets(ctx, group, ts)
	if err == nil {
		err = del["adm"][0]
	}
	if err != nil {
		t.Errorf("OffsetDelete on an empty group: %v", err)
	}
	offsets, err = adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup("adm", 0); ok && o.At >= 0 {
		t.Errorf("adm/0 still committed after OffsetDelete: %+v", o)
	}

	dg, err = adm.DeleteGroup(ctx, group)
	if err == nil {
		err = dg.Err
	}
	if err != nil {
		t.Fatalf("DeleteGroups on an empty group: %v", err)
	}
	listed, err = adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := listed[group]; ok {
		t.Errorf("ListGroups still lists %s after DeleteGroups", group)
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err == nil {
		g, _ := described.On(group, nil)
		if g.Err != nil && !errors.Is(g.Err, kerr.GroupIDNotFound) {
			t.Errorf("DescribeGroups of a deleted group: %v", g.Err)
		} else if g.Err == nil && g.State != "Dead" {
			t.Errorf("DescribeGroups of a deleted group: state %s, want Dead or GROUP_ID_NOT_FOUND", g.State)
		}
	}
}

func adminDeleteTopics(ctx context.Context, t *testing.T, adm *kadm.Client) {
	r, err := adm.DeleteTopic(ctx, "adm")
	if err == nil {
		err = r.Err
	}
	if err != nil {
		t.Fatalf("delete adm: %v", err)
	}
	waitFor(ctx, t, "adm to disappear from metadata", func() (bool, string) {
		topics, err := adm.ListTopics(ctx)
		if err != nil {
			return false, err.Error()
		}
		return !topics.Has("adm"), fmt.Sprint(topics.Names())
	})
	r, err = adm.DeleteTopic(ctx, "adm")
	if err == nil {
		err = r.Err
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting adm again: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}
