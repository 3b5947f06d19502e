package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
)

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{5 << 20, "5.0 MiB"},
		{3 << 30, "3.0 GiB"},
	} {
		if got := byteSize(tc.n); got != tc.want {
			t.Errorf("byteSize(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestTableAlignsAndDropsEmptyErrorColumn(t *testing.T) {
	var buf bytes.Buffer
	table(&buf, []string{"A", "LONGER", "ERROR"}, [][]string{{"x", "1", ""}, {"yyyy", "22", ""}})
	want := "A     LONGER\nx     1\nyyyy  22\n"
	if got := buf.String(); got != want {
		t.Errorf("table:\n%q\nwant\n%q", got, want)
	}

	buf.Reset()
	table(&buf, []string{"A", "ERROR"}, [][]string{{"x", ""}, {"y", "boom"}})
	if got := buf.String(); !strings.Contains(got, "ERROR") || !strings.Contains(got, "y  boom") {
		t.Errorf("an ERROR column with an error must stay:\n%s", got)
	}
}

func TestOffsetString(t *testing.T) {
	if offsetString(-1) != "-" || offsetString(0) != "0" || offsetString(42) != "42" {
		t.Error("offsetString: -1 must read -, others as numbers")
	}
}

func TestParseKVs(t *testing.T) {
	got, err := parseKVs("config", []string{"a=1", "b=x=y", "c="})
	if err != nil {
		t.Fatal(err)
	}
	if got["a"] != "1" || got["b"] != "x=y" || got["c"] != "" || len(got) != 3 {
		t.Errorf("parseKVs = %v", got)
	}
	for _, bad := range []string{"novalue", "=v"} {
		if _, err := parseKVs("config", []string{bad}); err == nil {
			t.Errorf("parseKVs(%q): want a usage error", bad)
		}
	}
}

func TestResetSpec(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		topic                   string
		earliest, latest, toSet bool
		to                      int64
		wantErr                 bool
		start, end, want        int64
	}{
		{name: "earliest", topic: "t", earliest: true, start: 5, end: 10, want: 5},
		{name: "latest", topic: "t", latest: true, start: 5, end: 10, want: 10},
		{name: "offset inside", topic: "t", toSet: true, to: 7, start: 5, end: 10, want: 7},
		{name: "offset below start is clamped", topic: "t", toSet: true, to: 0, start: 5, end: 10, want: 5},
		{name: "offset past end is clamped", topic: "t", toSet: true, to: 99, start: 5, end: 10, want: 10},
		{name: "no topic", earliest: true, wantErr: true},
		{name: "no target", topic: "t", wantErr: true},
		{name: "two targets", topic: "t", earliest: true, latest: true, wantErr: true},
		{name: "negative offset", topic: "t", toSet: true, to: -3, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := resetSpecFrom(tc.topic, tc.earliest, tc.latest, tc.toSet, tc.to)
			if tc.wantErr {
				if _, ok := err.(usageError); !ok {
					t.Fatalf("err = %v, want a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := spec.target(tc.start, tc.end); got != tc.want {
				t.Errorf("target(%d, %d) = %d, want %d", tc.start, tc.end, got, tc.want)
			}
		})
	}
}

func TestUploadLag(t *testing.T) {
	for _, tc := range []struct {
		p    tierPartition
		want int64
	}{
		{tierPartition{LogStart: 0, LatestTiered: -1, End: 0}, 0},
		{tierPartition{LogStart: 0, LatestTiered: -1, End: 50}, 50},
		{tierPartition{LogStart: 0, LatestTiered: 39, End: 50}, 10},
		{tierPartition{LogStart: 20, LatestTiered: 49, End: 50}, 0},
	} {
		if got := uploadLag(tc.p); got != tc.want {
			t.Errorf("uploadLag(%+v) = %d, want %d", tc.p, got, tc.want)
		}
	}
}

func TestTopicDescribeTable(t *testing.T) {
	r := topicDescribeResult{
		topicSummary: topicSummary{Name: "orders", ID: "id-1", Partitions: 2, ReplicationFactor: 1},
		PartitionInfo: []partitionInfo{
			{Partition: 0, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1}, ISR: []int32{1}, LogStartOffset: 0, LogEndOffset: 12},
			{Partition: 1, Leader: 1, Replicas: []int32{1, 2}, ISR: []int32{1}, LogStartOffset: 4, LogEndOffset: 4},
		},
		Configs: map[string]string{"retention.ms": "1000", "cleanup.policy": "delete"},
	}
	var buf bytes.Buffer
	r.writeTable(&buf)
	got := buf.String()
	for _, want := range []string{
		"Topic: orders  ID: id-1  Partitions: 2  Replication factor: 1",
		"PARTITION  LEADER  EPOCH  REPLICAS  ISR  LOG-START  LOG-END\n",
		"0          1       3      1         1    0          12\n",
		"1          1       0      1,2       1    4          4\n",
		"cleanup.policy  delete\nretention.ms    1000\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ERROR") {
		t.Errorf("no partition has an error, yet:\n%s", got)
	}

	buf.Reset()
	if err := writeResult(&buf, r, "json"); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, buf.String())
	}
	if back["name"] != "orders" || back["partitions"] != float64(2) || len(back["partition_details"].([]any)) != 2 ||
		back["configs"].(map[string]any)["retention.ms"] != "1000" {
		t.Errorf("json output: %s", buf.String())
	}
}

func TestGroupDescribeTable(t *testing.T) {
	r := groupDescribeResult{
		Group: "g", State: "Stable", ProtocolType: "consumer", Protocol: "range", Coordinator: 1,
		Members: []groupMember{{MemberID: "m-1", ClientID: "c", ClientHost: "/127.0.0.1", Assigned: []string{"t/0", "t/1"}}},
		Offsets: []groupOffset{
			{Topic: "t", Partition: 0, Committed: 3, End: 10, Lag: 7, MemberID: "m-1"},
			{Topic: "t", Partition: 1, Committed: -1, End: 5, Lag: 5, MemberID: "m-1"},
		},
		TotalLag: 12,
	}
	var buf bytes.Buffer
	r.writeTable(&buf)
	got := buf.String()
	for _, want := range []string{
		"Group: g  State: Stable  Protocol: consumer/range  Coordinator: 1",
		"m-1     c          /127.0.0.1  t/0,t/1",
		"t      0          3          10   7    m-1",
		"t      1          -          5    5    m-1",
		"Total lag: 12",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestTieringTable(t *testing.T) {
	r := tieringResult{
		Topic: "t", RemoteEnabled: true, RemoteStore: "file:///o", LocalBytes: 2048, RemoteBytes: 100,
		Partitions: []tierPartition{
			{Partition: 0, LogStart: 0, LocalStart: 40, LatestTiered: 39, End: 50, LocalBytes: 2048, RemoteBytes: 100, UploadLag: 10},
			{Partition: 1, LogStart: 0, LocalStart: 0, LatestTiered: -1, End: 0},
		},
	}
	var buf bytes.Buffer
	r.writeTable(&buf)
	got := buf.String()
	for _, want := range []string{
		"Topic: t  Remote storage: true  Local: 2.0 KiB  Remote: 100 B",
		"Object store: file:///o",
		"0          0          40           39             50   0-39          40-49        100 B        2.0 KiB     10",
		"1          0          0            -              0    -             -            0 B          0 B         0",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

func TestClusterTable(t *testing.T) {
	r := clusterResult{ClusterID: "abc", Controller: 2, Brokers: []brokerInfo{{ID: 1, Host: "h1", Port: 9092}, {ID: 2, Host: "h2", Port: 9093, Rack: "r"}}}
	var buf bytes.Buffer
	r.writeTable(&buf)
	got := buf.String()
	for _, want := range []string{"Cluster ID: abc\nController: 2\n", "1       h1    9092", "2       h2    9093  r     controller"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestAdminExitCodes(t *testing.T) {
	t.Setenv(envBootstrap, "")
	down := closedAddr(t)
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string
		stderrLine string
	}{
		{args: []string{"topics"}, code: exitUsage, stderrLine: "Usage: strata topics COMMAND"},
		{args: []string{"topics", "--help"}, code: exitOK, stdout: "describe TOPIC"},
		{args: []string{"topics", "frob"}, code: exitUsage, stderrLine: `strata topics: unknown command "frob"`},
		{args: []string{"topics", "describe"}, code: exitUsage, stderrLine: "strata topics describe: want 1 argument(s) (TOPIC), got 0"},
		{args: []string{"topics", "list", "extra"}, code: exitUsage, stderrLine: "strata topics list: want 0 argument(s)"},
		{args: []string{"topics", "list", "--output", "yaml"}, code: exitUsage, stderrLine: "--output must be table or json"},
		{args: []string{"topics", "list", "--nope"}, code: exitUsage, stderrLine: "unknown flag: --nope"},
		{args: []string{"topics", "describe", "--help"}, code: exitOK, stdout: "Usage: strata topics describe TOPIC [flags]"},
		{args: []string{"topics", "create", "t", "--config", "x", "--bootstrap", down}, code: exitUsage, stderrLine: `--config "x": want key=value`},
		{args: []string{"topics", "alter", "t", "--bootstrap", down}, code: exitUsage, stderrLine: "nothing to alter"},
		{args: []string{"groups", "reset-offsets", "g", "--topic", "t", "--bootstrap", down}, code: exitUsage, stderrLine: "exactly one of"},
		{args: []string{"topics", "list", "--bootstrap", down, "--timeout", "3s"}, code: exitFailed, stderrLine: "strata topics list: metadata: "},
		{args: []string{"cluster", "describe", "--timeout", "3s"}, code: exitFailed, stderrLine: "strata cluster describe: metadata: "},
		{args: []string{"cluster", "add-voter", "x", "127.0.0.1:9093"}, code: exitUsage, stderrLine: `node id "x": want an integer >= 0`},
		{args: []string{"cluster", "add-voter", "-1", "127.0.0.1:9093"}, code: exitUsage, stderrLine: "unknown shorthand flag"},
		{args: []string{"cluster", "add-voter", "3", "127.0.0.1"}, code: exitUsage, stderrLine: `"127.0.0.1": want HOST:PORT`},
		{args: []string{"cluster", "add-voter", "3", "127.0.0.1:0"}, code: exitUsage, stderrLine: "port in 1..65535"},
		{args: []string{"cluster", "add-voter", "3"}, code: exitUsage, stderrLine: "want 2 argument(s) (ID HOST:PORT), got 1"},
		{args: []string{"cluster", "remove-voter"}, code: exitUsage, stderrLine: "want 1 argument(s) (ID), got 0"},
		{args: []string{"cluster", "quorum", "--timeout", "3s"}, code: exitFailed, stderrLine: "strata cluster quorum: describe quorum: "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if tc.args[0] == "cluster" {
				t.Setenv(envBootstrap, down) // the env var is used when --bootstrap is absent
			}
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderrLine) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderrLine, stderr.String())
			}
		})
	}
}

func TestUsageListsAdminCommands(t *testing.T) {
	var buf bytes.Buffer
	usage(&buf)
	for _, g := range adminGroups {
		if !strings.Contains(buf.String(), "strata "+g+" ") {
			t.Errorf("usage does not mention %q:\n%s", g, buf.String())
		}
	}
}

func TestQuorumTable(t *testing.T) {
	now := time.UnixMilli(1_700_000_010_000)
	r := quorumResultOf(broker.QuorumDescription{
		LeaderID: 2, LeaderEpoch: 7, HighWatermark: 120,
		Voters: []broker.QuorumReplica{
			{ID: 1, LogEndOffset: 118, LastFetchTimestamp: 1_700_000_009_750, LastCaughtUpTimestamp: 1_700_000_009_000, Endpoints: []string{"PLAINTEXT://h1:9092"}},
			{ID: 2, LogEndOffset: 121, LastFetchTimestamp: 1_700_000_010_000, LastCaughtUpTimestamp: 1_700_000_010_000},
		},
		Observers: []broker.QuorumReplica{{ID: 4, LogEndOffset: -1, LastFetchTimestamp: -1, LastCaughtUpTimestamp: -1}},
	}, now)
	checkRender(t, r, []string{
		"Leader: 2  Epoch: 7  High watermark: 120\n",
		"NODE  ROLE      LOG-END  LAG  LAST-FETCH  LAST-CAUGHT-UP  ENDPOINTS\n",
		"1     follower  118      3    250ms ago   1s ago          PLAINTEXT://h1:9092\n",
		"2     leader    121      0    0s ago      0s ago          -\n",
		"4     observer  -        -    -           -               -\n",
	}, `{"leader_id":2,"leader_epoch":7,"high_watermark":120,"voters":[`+
		`{"id":1,"role":"follower","log_end_offset":118,"lag":3,"last_fetch_timestamp_ms":1700000009750,"last_caught_up_timestamp_ms":1700000009000,"endpoints":["PLAINTEXT://h1:9092"]},`+
		`{"id":2,"role":"leader","log_end_offset":121,"lag":0,"last_fetch_timestamp_ms":1700000010000,"last_caught_up_timestamp_ms":1700000010000}],`+
		`"observers":[{"id":4,"role":"observer","log_end_offset":-1,"lag":-1,"last_fetch_timestamp_ms":-1,"last_caught_up_timestamp_ms":-1}]}`)
	checkRender(t, voterChange{Action: "added", ID: 3, Addr: "h3:9093"}, []string{"added voter 3 at h3:9093\n"}, `{"action":"added","id":3,"addr":"h3:9093"}`)
	checkRender(t, voterChange{Action: "removed", ID: 3}, []string{"removed voter 3\n"}, `{"action":"removed","id":3}`)
}

// TestKgoClientInContext: the quorum commands reach the command's Kafka
// client through the context.
func TestKgoClientInContext(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(closedAddr(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got, err := kgoClient(withKgoClient(context.Background(), cl))
	if err != nil || got != cl {
		t.Fatalf("kgoClient = %p, %v; want %p", got, err, cl)
	}
	if _, err := kgoClient(context.Background()); err == nil {
		t.Fatal("kgoClient without a client: no error")
	}
}

// startBroker runs a single-node broker in this process (a one-voter
// metadata quorum without a Raft port) and returns its address.
func startBroker(t *testing.T) (string, int32) {
	t.Helper()
	cfg := broker.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := broker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return srv.Addr().String(), cfg.NodeID
}

// TestClusterQuorumCommands runs the quorum commands against a broker:
// a single node is a one-voter quorum that it leads, and the broker's
// refusals reach the operator with Kafka's error name and its reason.
func TestClusterQuorumCommands(t *testing.T) {
	t.Setenv(envBootstrap, "")
	addr, self := startBroker(t)
	runCLI := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(append(args, "--bootstrap", addr, "--timeout", "20s"), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := runCLI("cluster", "quorum", "--output", "json")
	if code != exitOK {
		t.Fatalf("cluster quorum: exit %d\n%s", code, errOut)
	}
	var q quorumResult
	if err := json.Unmarshal([]byte(out), &q); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, out)
	}
	if q.LeaderID != self || q.LeaderEpoch < 1 || q.HighWatermark < 1 || len(q.Voters) != 1 || len(q.Observers) != 0 {
		t.Fatalf("quorum %+v, want this node (%d) leading alone", q, self)
	}
	if v := q.Voters[0]; v.ID != self || v.Role != "leader" || v.Lag != 0 || v.LogEndOffset < q.HighWatermark || len(v.Endpoints) != 1 ||
		!strings.HasSuffix(v.Endpoints[0], "://"+addr) {
		t.Errorf("voter %+v, want the leader at %s without lag", v, addr)
	}

	code, out, errOut = runCLI("cluster", "quorum")
	if code != exitOK || !strings.Contains(out, "Leader: "+itoa(self)+"  Epoch: ") || !strings.Contains(out, "leader") {
		t.Errorf("cluster quorum table: exit %d\n%s%s", code, out, errOut)
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"cluster", "add-voter", "5", "127.0.0.1:1"}, []string{"add voter 5 at 127.0.0.1:1: REQUEST_TIMED_OUT", "does not follow the metadata quorum"}},
		{[]string{"cluster", "add-voter", itoa(self), "127.0.0.1:1"}, []string{"DUPLICATE_VOTER"}},
		{[]string{"cluster", "remove-voter", itoa(self)}, []string{"remove voter " + itoa(self) + ": INVALID_REQUEST", "only voter"}},
		{[]string{"cluster", "remove-voter", "5"}, []string{"VOTER_NOT_FOUND"}},
	} {
		code, out, errOut := runCLI(tc.args...)
		if code != exitFailed || out != "" {
			t.Errorf("%v: exit %d, stdout %q; want exit %d", tc.args, code, out, exitFailed)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}
