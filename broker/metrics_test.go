package broker

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
)

func scrape(t *testing.T, ts *testServer) string {
	t.Helper()
	resp, err := http.Get("http://" + ts.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// metricValue finds the first sample of name whose labels contain every
// label in want; -1 when absent.
func metricValue(body, name string, want ...string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		ok := true
		for _, w := range want {
			if !strings.Contains(m[1], w) {
				ok = false
			}
		}
		if ok {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

func TestMetricsMoveWithTraffic(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "m", 1)
	cl := ts.client(t)
	before := scrape(t, ts)
	ts.produce(t, cl, "m", 0, "one", "two", "three")
	rc := ts.raw(t)
	rc.do(fetchReq(11, 0, -1, "m", [16]byte{}, map[int32]int64{0: 0}))
	// A request is counted just after its response is written: wait for it.
	var after string
	waitFor(t, "the fetch to be counted", func() bool {
		after = scrape(t, ts)
		return metricValue(after, "strata_broker_request_duration_seconds_count", `api="Fetch"`) >= 1
	})

	if got := metricValue(after, "strata_broker_topic_messages_in_total", `topic="m"`); got != 3 {
		t.Errorf("messages in = %v, want 3", got)
	}
	if b0, b1 := metricValue(before, "strata_broker_requests_total", `api="Produce"`), metricValue(after, "strata_broker_requests_total", `api="Produce"`); b1 < b0+3 {
		t.Errorf("produce requests %v -> %v, want at least 3 more", b0, b1)
	}
	if got := metricValue(after, "strata_broker_topic_bytes_out_total", `topic="m"`); got <= 0 {
		t.Errorf("bytes out = %v, want > 0", got)
	}
	if got := metricValue(after, "strata_log_end_offset", `topic="m"`); got != 3 {
		t.Errorf("log end offset gauge = %v, want 3", got)
	}
	if got := metricValue(after, "strata_broker_connections"); got < 1 {
		t.Errorf("connections = %v, want >= 1", got)
	}
	if got := metricValue(after, "strata_cluster_active_controller"); got != 1 {
		t.Errorf("active controller = %v, want 1 on a single node", got)
	}
	if got := metricValue(after, "strata_broker_produce_purgatory_size"); got != 0 {
		t.Errorf("produce purgatory = %v, want 0 (present, nothing waiting)", got)
	}
	if got := metricValue(after, "strata_cluster_under_replicated_partitions"); got != 0 {
		t.Errorf("under-replicated partitions = %v, want 0", got)
	}

	// A group that committed offset 1 of 3 is 2 behind.
	adm := kadm.NewClient(cl)
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: "m", Partition: 0, At: 1, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(context.Background(), "lagging", offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	if got := metricValue(scrape(t, ts), "strata_group_lag", `group="lagging"`, `topic="m"`, `partition="0"`); got != 2 {
		t.Errorf("group lag = %v, want 2", got)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + ts.AdminAddr().String() + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}
