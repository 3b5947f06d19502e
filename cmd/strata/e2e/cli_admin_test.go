package e2e

// The admin CLI (`strata topics|groups|cluster|tiering ...`) run as a
// process against a real broker, in table and JSON output.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// cli runs an admin command against b and fails unless it exits 0.
func cli(t *testing.T, b *brokerProc, args ...string) string {
	t.Helper()
	code, stdout, stderr := runStrata(t, []string{"STRATA_BOOTSTRAP=" + b.Addr}, args...)
	if code != 0 {
		t.Fatalf("strata %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// cliJSON runs an admin command with --output json and decodes its output.
func cliJSON(t *testing.T, b *brokerProc, into any, args ...string) {
	t.Helper()
	out := cli(t, b, append(args, "--output", "json")...)
	reflect.ValueOf(into).Elem().SetZero() // decoding into used maps would merge
	if err := json.Unmarshal([]byte(out), into); err != nil {
		t.Fatalf("strata %s --output json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliFails runs an admin command that must fail with code and a stderr
// naming the command and containing want.
func cliFails(t *testing.T, b *brokerProc, code int, want string, args ...string) {
	t.Helper()
	got, stdout, stderr := runStrata(t, []string{"STRATA_BOOTSTRAP=" + b.Addr}, args...)
	name := "strata " + args[0] + " " + args[1] + ": "
	if got != code || !strings.Contains(stderr, name) || !strings.Contains(stderr, want) {
		t.Errorf("strata %s: exit %d, want %d with %q%q on stderr\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), got, code, name, want, stdout, stderr)
	}
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

type cliTopic struct {
	Name              string `json:"name"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
	Details           []struct {
		Partition      int32   `json:"partition"`
		Leader         int32   `json:"leader"`
		Replicas       []int32 `json:"replicas"`
		ISR            []int32 `json:"isr"`
		LogStartOffset int64   `json:"log_start_offset"`
		LogEndOffset   int64   `json:"log_end_offset"`
	} `json:"partition_details"`
	Configs map[string]string `json:"configs"`
}

func TestCLITopicsAndCluster(t *testing.T) {
	t.Parallel()
	b := startBroker(t)

	out := cli(t, b, "topics", "create", "cli-orders", "--partitions", "3", "--replication-factor", "1",
		"--config", "retention.ms=3600000", "--config", "cleanup.policy=delete")
	mustContain(t, "topics create", out, "created topic cli-orders (3 partitions, replication factor 1")
	cliFails(t, b, 1, "TOPIC_ALREADY_EXISTS", "topics", "create", "cli-orders", "--partitions", "1")
	cliFails(t, b, 1, "INVALID_CONFIG", "topics", "create", "cli-bad", "--config", "no.such.key=1")

	// Records so that end offsets are not all zero.
	ctx := testContext(t, 60*time.Second)
	cl := b.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 5 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "cli-orders", Partition: 1, Value: fmt.Appendf(nil, "v%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	out = cli(t, b, "topics", "list")
	mustContain(t, "topics list", out, "TOPIC", "PARTITIONS", "cli-orders  3           1")
	var list struct{ Topics []cliTopic }
	cliJSON(t, b, &list, "topics", "list")
	found := false
	for _, tp := range list.Topics {
		if tp.Name == "cli-orders" {
			found = tp.Partitions == 3 && tp.ReplicationFactor == 1 && !tp.Internal && len(tp.ID) == 36
		}
	}
	if !found {
		t.Errorf("topics list --output json: %+v", list)
	}

	out = cli(t, b, "topics", "describe", "cli-orders")
	mustContain(t, "topics describe", out,
		"Topic: cli-orders", "Partitions: 3",
		"PARTITION  LEADER  EPOCH  REPLICAS  ISR  LOG-START  LOG-END",
		"1          1       0      1         1    0          5",
		"cleanup.policy  delete", "retention.ms    3600000")
	var desc cliTopic
	cliJSON(t, b, &desc, "topics", "describe", "cli-orders")
	if len(desc.Details) != 3 || desc.Details[1].LogEndOffset != 5 || desc.Details[0].LogEndOffset != 0 ||
		desc.Details[1].Leader != 1 || len(desc.Details[1].ISR) != 1 || desc.Configs["retention.ms"] != "3600000" {
		t.Errorf("topics describe --output json: %+v", desc)
	}
	if _, ok := desc.Configs["segment.bytes"]; ok {
		t.Errorf("describe lists a config that is not set on the topic: %v", desc.Configs)
	}

	out = cli(t, b, "topics", "alter", "cli-orders", "--set", "segment.bytes=1048576", "--delete", "retention.ms")
	mustContain(t, "topics alter", out, "altered topic cli-orders", "set    segment.bytes=1048576", "delete retention.ms")
	cliJSON(t, b, &desc, "topics", "describe", "cli-orders")
	if desc.Configs["segment.bytes"] != "1048576" || desc.Configs["retention.ms"] != "" || desc.Configs["cleanup.policy"] != "delete" {
		t.Errorf("configs after alter: %v", desc.Configs)
	}
	var change struct {
		Action string
		Topic  string
		Set    map[string]string
	}
	cliJSON(t, b, &change, "topics", "alter", "cli-orders", "--set", "retention.ms=1000")
	if change.Action != "altered" || change.Set["retention.ms"] != "1000" {
		t.Errorf("topics alter --output json: %+v", change)
	}

	cliJSON(t, b, &change, "topics", "create", "cli-temp", "--partitions", "1")
	if change.Action != "created" || change.Topic != "cli-temp" {
		t.Errorf("topics create --output json: %+v", change)
	}
	mustContain(t, "topics delete", cli(t, b, "topics", "delete", "cli-temp"), "deleted topic cli-temp")
	cliFails(t, b, 1, "UNKNOWN_TOPIC_OR_PARTITION", "topics", "describe", "cli-temp")
	cliFails(t, b, 1, "UNKNOWN_TOPIC_OR_PARTITION", "topics", "delete", "cli-temp")
	cliFails(t, b, 2, "want 1 argument(s)", "topics", "describe")

	out = cli(t, b, "cluster", "describe")
	mustContain(t, "cluster describe", out, "Cluster ID: ", "Controller: 1", "BROKER  HOST", "controller")
	var cluster struct {
		ClusterID  string `json:"cluster_id"`
		Controller int32
		Brokers    []struct {
			ID   int32
			Host string
			Port int32
		}
	}
	cliJSON(t, b, &cluster, "cluster", "describe")
	if cluster.ClusterID == "" || cluster.Controller != 1 || len(cluster.Brokers) != 1 ||
		fmt.Sprintf("%s:%d", cluster.Brokers[0].Host, cluster.Brokers[0].Port) != b.Addr {
		t.Errorf("cluster describe --output json: %+v (broker at %s)", cluster, b.Addr)
	}
}

func TestCLIUnreachableBroker(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t) // nothing listens here
	code, _, stderr := runStrata(t, nil, "topics", "list", "--bootstrap", addr, "--timeout", "5s")
	if code != 1 || !strings.Contains(stderr, "strata topics list: ") || !strings.Contains(stderr, addr) {
		t.Errorf("exit %d, want 1 with the command and address on stderr:\n%s", code, stderr)
	}
}

type cliGroup struct {
	Group   string
	State   string
	Members []struct {
		MemberID string `json:"member_id"`
		ClientID string `json:"client_id"`
		Assigned []string
	}
	Offsets []struct {
		Topic     string
		Partition int32
		Committed int64
		End       int64
		Lag       int64
	}
	TotalLag int64 `json:"total_lag"`
}

func (g cliGroup) committed() map[int32][3]int64 {
	out := map[int32][3]int64{}
	for _, o := range g.Offsets {
		out[o.Partition] = [3]int64{o.Committed, o.End, o.Lag}
	}
	return out
}

func TestCLIGroups(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	ctx := testContext(t, 90*time.Second)
	const topic, group = "cli-events", "cli-group"
	cli(t, b, "topics", "create", topic, "--partitions", "2")

	prod := b.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(p int32, n int) {
		for i := range n {
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce(0, 10)
	produce(1, 10)

	member, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ClientID("cli-test-member"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer member.Close()
	for got := 0; got < 20; {
		fs := member.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of 20: %v", got, err)
		}
		got += fs.NumRecords()
	}
	if err := member.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	produce(0, 5) // lag 5 on partition 0

	// Live group: members, offsets and lag; resets are refused.
	out := cli(t, b, "groups", "list")
	mustContain(t, "groups list", out, "GROUP", "cli-group  Stable  consumer")
	out = cli(t, b, "groups", "describe", group)
	mustContain(t, "groups describe", out, "State: Stable", "cli-test-member", topic+"/0", topic+"/1",
		"TOPIC       PARTITION  COMMITTED  END  LAG", "cli-events  0          10         15   5", "Total lag: 5")
	var g cliGroup
	cliJSON(t, b, &g, "groups", "describe", group)
	if c := g.committed(); g.State != "Stable" || len(g.Members) != 1 || g.Members[0].ClientID != "cli-test-member" ||
		len(g.Members[0].Assigned) != 2 || c[0] != [3]int64{10, 15, 5} || c[1] != [3]int64{10, 10, 0} || g.TotalLag != 5 {
		t.Errorf("groups describe --output json: %+v", g)
	}
	cliFails(t, b, 1, "stop its consumers first", "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
	cliFails(t, b, 1, "NON_EMPTY_GROUP", "groups", "delete", group)

	member.Close()
	waitFor(ctx, t, "the group to empty", func() (bool, string) {
		var g cliGroup
		cliJSON(t, b, &g, "groups", "describe", group)
		return g.State == "Empty", g.State
	})

	// Dry run: a plan, nothing committed.
	out = cli(t, b, "groups", "reset-offsets", group, "--topic", topic, "--to-offset", "3")
	mustContain(t, "reset-offsets dry run", out, "TOPIC       PARTITION  CURRENT  NEW",
		"cli-events  0          10       3", "cli-events  1          10       3", "dry run")
	cliJSON(t, b, &g, "groups", "describe", group)
	if c := g.committed(); c[0][0] != 10 || c[1][0] != 10 {
		t.Errorf("a dry run changed offsets: %+v", g)
	}

	var reset struct {
		Executed   bool
		Partitions []struct {
			Partition    int32
			Current, New int64
		}
	}
	cliJSON(t, b, &reset, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
	if !reset.Executed || len(reset.Partitions) != 2 || reset.Partitions[0].New != 0 || reset.Partitions[0].Current != 10 {
		t.Errorf("reset-offsets --execute --output json: %+v", reset)
	}
	cliJSON(t, b, &g, "groups", "describe", group)
	if c := g.committed(); c[0] != [3]int64{0, 15, 15} || c[1] != [3]int64{0, 10, 10} || g.TotalLag != 25 {
		t.Errorf("after reset to earliest: %+v", g)
	}
	out = cli(t, b, "groups", "reset-offsets", group, "--topic", topic, "--to-latest", "--execute")
	mustContain(t, "reset-offsets --to-latest", out, "cli-events  0          0        15", "committed the new offsets")
	cliJSON(t, b, &g, "groups", "describe", group)
	if g.TotalLag != 0 {
		t.Errorf("after reset to latest: %+v", g)
	}

	mustContain(t, "groups delete", cli(t, b, "groups", "delete", group), "deleted group cli-group")
	var groups struct{ Groups []struct{ Group string } }
	cliJSON(t, b, &groups, "groups", "list")
	for _, lg := range groups.Groups {
		if lg.Group == group {
			t.Errorf("groups list after delete: %+v", groups)
		}
	}
	cliFails(t, b, 1, "no such group", "groups", "describe", group)
}

func TestCLITieringStatus(t *testing.T) {
	t.Parallel()
	// The default object store (file://DATA-DIR/objects) needs no S3 server.
	b := startBroker(t, "--set", "log.retention.check.interval.ms=200")
	ctx := testContext(t, 90*time.Second)
	const topic = "cli-tier"
	cli(t, b, "topics", "create", topic, "--partitions", "1",
		"--config", "remote.storage.enable=true",
		"--config", fmt.Sprintf("segment.bytes=%d", tierSegmentBytes),
		"--config", fmt.Sprintf("local.retention.bytes=%d", tierLocalRetention),
		"--config", "retention.ms=-1")

	// Uncompressed, so that 100 KB of records fill several 20 KB segments.
	cl := b.Client(kgo.ProducerLinger(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := strings.Repeat("x", 1000)
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%d %s", i, value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	type status struct {
		RemoteEnabled bool   `json:"remote_storage_enable"`
		RemoteStore   string `json:"remote_store"`
		LocalBytes    int64  `json:"local_bytes"`
		RemoteBytes   int64  `json:"remote_bytes"`
		Partitions    []struct {
			LogStart     int64 `json:"log_start_offset"`
			LocalStart   int64 `json:"local_start_offset"`
			LatestTiered int64 `json:"latest_tiered_offset"`
			End          int64 `json:"end_offset"`
			LocalBytes   int64 `json:"local_bytes"`
			RemoteBytes  int64 `json:"remote_bytes"`
			UploadLag    int64 `json:"upload_lag_offsets"`
		}
	}
	var st status
	waitFor(ctx, t, "segments to tier and leave the local disk", func() (bool, string) {
		st = status{}
		cliJSON(t, b, &st, "tiering", "status", topic)
		if len(st.Partitions) != 1 {
			return false, fmt.Sprintf("%+v", st)
		}
		p := st.Partitions[0]
		return p.LatestTiered >= 0 && p.LocalStart > 0 && p.RemoteBytes > 0, fmt.Sprintf("%+v", st)
	})
	p := st.Partitions[0]
	if !st.RemoteEnabled || !strings.HasPrefix(st.RemoteStore, "file://") || p.LogStart != 0 || p.End != 100 ||
		p.LocalStart > p.LatestTiered+1 || p.LocalBytes <= 0 || st.RemoteBytes < p.RemoteBytes || st.LocalBytes <= 0 ||
		p.UploadLag != p.End-(p.LatestTiered+1) {
		t.Errorf("tiering status --output json: %+v", st)
	}

	out := cli(t, b, "tiering", "status", topic)
	mustContain(t, "tiering status", out, "Topic: cli-tier  Remote storage: true", "Object store: file://",
		"PARTITION  LOG-START  LOCAL-START  LATEST-TIERED  END", "UPLOAD-LAG",
		"REMOTE-RANGE", "LOCAL-RANGE", "REMOTE-SIZE", "LOCAL-SIZE", "\n0          0          ")

	cliFails(t, b, 1, "UNKNOWN_TOPIC_OR_PARTITION", "tiering", "status", "no-such-topic")
}
