package broker

import (
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The latency breakdown (Kafka's RequestMetrics) and the error counter
// move with traffic, with the labels operators query.
func TestRequestBreakdownAndErrors(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "obs", 1)
	rc := ts.raw(t)

	// A produce to a partition that does not exist: one error code, counted
	// under the Produce API by its Kafka name.
	if p := producePart(rc.do(produceReq(-1, "obs", 5, batchOf(-1, -1, -1, "x")))); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("produce to partition 5: error %d, want UNKNOWN_TOPIC_OR_PARTITION", p.ErrorCode)
	}
	// A produce that waits for its fsync: a deferred part.
	if p := producePart(rc.do(produceReq(-1, "obs", 0, batchOf(-1, -1, -1, "y")))); p.ErrorCode != 0 {
		t.Fatalf("produce: error %d", p.ErrorCode)
	}
	// A fetch of an unknown topic: Fetch replies are spliced, their error
	// codes must be counted all the same.
	if fr := rc.do(fetchReq(11, 0, -1, "nope", [16]byte{}, map[int32]int64{0: 0, 1: 0})).(*kmsg.FetchResponse); len(fr.Topics) != 1 ||
		fr.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("fetch of an unknown topic: %+v", fr.Topics)
	}
	// A long poll at the end of the log: about MaxWait of remote time.
	poll := fetchReq(11, 0, -1, "obs", [16]byte{}, map[int32]int64{0: 1})
	poll.MaxWaitMillis, poll.MinBytes = 200, 1
	rc.do(poll)

	var body string
	waitFor(t, "the long poll to be counted", func() bool {
		body = scrape(t, ts)
		return metricValue(body, "strata_broker_request_remote_time_seconds_count", `api="Fetch"`) >= 2
	})
	if got := metricValue(body, "strata_broker_request_errors_total", `api="Produce"`, `error="UNKNOWN_TOPIC_OR_PARTITION"`); got != 1 {
		t.Errorf("Produce UNKNOWN_TOPIC_OR_PARTITION errors = %v, want 1", got)
	}
	if got := metricValue(body, "strata_broker_request_errors_total", `api="Fetch"`, `error="UNKNOWN_TOPIC_OR_PARTITION"`); got != 2 {
		t.Errorf("Fetch UNKNOWN_TOPIC_OR_PARTITION errors = %v, want 2 (one per partition)", got)
	}
	if got := metricValue(body, "strata_broker_request_errors_total", `error="NONE"`); got != -1 {
		t.Errorf("NONE is counted (%v): only error codes are", got)
	}
	for _, h := range []string{
		"strata_broker_request_queue_time_seconds", "strata_broker_request_local_time_seconds",
		"strata_broker_request_remote_time_seconds", "strata_broker_request_throttle_time_seconds",
		"strata_broker_request_response_send_time_seconds",
	} {
		for _, api := range []string{"Produce", "Fetch"} {
			if got := metricValue(body, h+"_count", `api="`+api+`"`); got < 2 {
				t.Errorf("%s_count{api=%q} = %v, want >= 2", h, api, got)
			}
		}
		if got := metricValue(body, h+"_bucket", `api="Fetch"`, `le="0.0001"`); got < 0 {
			t.Errorf("%s has no 0.0001 bucket: not the request duration's buckets", h)
		}
	}
	if got := metricValue(body, "strata_broker_request_remote_time_seconds_sum", `api="Fetch"`); got < 0.15 {
		t.Errorf("Fetch remote time sum = %v, want the 200 ms long poll in it", got)
	}
	if got := metricValue(body, "strata_broker_request_local_time_seconds_sum", `api="Fetch"`); got >= 0.15 {
		t.Errorf("Fetch local time sum = %v: the long poll was counted as local", got)
	}
}

func TestReplyThrottle(t *testing.T) {
	fetch := kmsg.NewPtrFetchResponse()
	fetch.ThrottleMillis = 250
	for _, tc := range []struct {
		name string
		rep  reply
		want time.Duration
	}{
		{"none", reply{resp: kmsg.NewPtrMetadataResponse()}, 0},
		{"handler", reply{throttle: time.Second}, time.Second},
		{"quota wins", reply{throttle: time.Second, quotaThrottle: 2 * time.Second}, 2 * time.Second},
		{"in the fetch response", reply{resp: fetch, quotaThrottle: 100 * time.Millisecond}, 250 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replyThrottle(&tc.rep); got != tc.want {
				t.Errorf("throttle %v, want %v", got, tc.want)
			}
		})
	}
}

// Every registered API's response type has a case in tallyErrors, and the
// case reaches every ErrorCode field of the response, however nested. The
// test fills them by reflection (the broker's counting does not use it).
func TestTallyErrorsCoversRegistry(t *testing.T) {
	for key := range apis {
		resp := kmsg.ResponseForKey(key)
		name := kmsg.NameForKey(key)
		if resp == nil {
			t.Errorf("api %d: kmsg has no response type", key)
			continue
		}
		code := int16(0)
		want := map[int16]int64{}
		fillErrorCodes(reflect.ValueOf(resp).Elem(), &code, want)
		if len(want) == 0 {
			t.Errorf("%s: no ErrorCode field found", name)
		}
		var tally errorTally
		if !tallyErrors(resp, &tally) {
			t.Errorf("%s (key %d): tallyErrors has no case for %T", name, key, resp)
			continue
		}
		if got := tally.all(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: tallied %v, want %v", name, got, want)
		}
		if want[tally.first] == 0 {
			t.Errorf("%s: first code %d is none of the response's", name, tally.first)
		}
	}
}

// all returns the tally as a map.
func (t *errorTally) all() map[int16]int64 {
	m := map[int16]int64{}
	for i := range t.n {
		m[t.codes[i]] += t.counts[i]
	}
	for c, n := range t.more {
		m[c] += n
	}
	return m
}

// fillErrorCodes gives every ErrorCode field under v a distinct code and
// every slice of structs two elements, recording what it set in want.
func fillErrorCodes(v reflect.Value, code *int16, want map[int16]int64) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.Type().Elem().Kind() == reflect.Struct {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			fillErrorCodes(v.Elem(), code, want)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			v.Set(reflect.MakeSlice(v.Type(), 2, 2))
			for i := range 2 {
				fillErrorCodes(v.Index(i), code, want)
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if !f.CanSet() {
				continue
			}
			if v.Type().Field(i).Name == "ErrorCode" && f.Kind() == reflect.Int16 {
				*code++
				f.SetInt(int64(*code))
				want[*code]++
				continue
			}
			fillErrorCodes(f, code, want)
		}
	}
}

func TestErrorTallySpills(t *testing.T) {
	var tally errorTally
	for _, c := range []int16{0, 3, 3, 5, 7, 9, 11, 11, 13, 0, 3} {
		tally.add(c)
	}
	want := map[int16]int64{3: 3, 5: 1, 7: 1, 9: 1, 11: 2, 13: 1}
	if got := tally.all(); !reflect.DeepEqual(got, want) {
		t.Errorf("tally %v, want %v", got, want)
	}
	if tally.first != 3 {
		t.Errorf("first %d, want 3", tally.first)
	}
}

func TestErrorNames(t *testing.T) {
	var e errorAttrs
	if &e.get(0, 6)[0] != &e.get(0, 6)[0] {
		t.Errorf("the attribute set of a pair is not cached")
	}
	for _, tc := range []struct {
		code int16
		want string
	}{
		{6, "NOT_LEADER_OR_FOLLOWER"}, {3, "UNKNOWN_TOPIC_OR_PARTITION"}, {-1, "UNKNOWN_SERVER_ERROR"}, {32000, "32000"},
	} {
		if got := errorName(tc.code); got != tc.want {
			t.Errorf("errorName(%d) = %q, want %q", tc.code, got, tc.want)
		}
	}
}

// Counting a response's errors and recording its latency allocate nothing
// once the (api, error) pair has been seen, with tracing off.
func TestObserveRequestAllocs(t *testing.T) {
	s := &Server{}
	var err error
	if s.metrics, err = newBrokerMetrics(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	defer s.metrics.shutdown(time.Second)
	resp := kmsg.NewPtrProduceResponse()
	rt := kmsg.NewProduceResponseTopic()
	for i := range 50 {
		p := kmsg.NewProduceResponseTopicPartition()
		p.Partition = int32(i)
		p.ErrorCode = []int16{0, 6, 3}[i%3]
		rt.Partitions = append(rt.Partitions, p)
	}
	resp.Topics = append(resp.Topics, rt)
	now := time.Now()
	rep := &reply{api: 0, resp: resp, start: now, handled: now, local: now, done: now, sending: now}
	s.observeRequest(rep)
	if n := testing.AllocsPerRun(100, func() { s.observeRequest(rep) }); n != 0 {
		t.Errorf("observeRequest allocates %v times per request, want 0", n)
	}
}

func TestTracingConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantKey string
	}{
		{"endpoint without port", func(c *Config) { c.TracingOTLPEndpoint = "collector" }, "tracing-otlp-endpoint"},
		{"endpoint as a URL", func(c *Config) { c.TracingOTLPEndpoint = "http://collector:4318" }, "tracing-otlp-endpoint"},
		{"percent above 100", func(c *Config) { c.TracingSamplePercent = 101 }, "tracing-sample-percent"},
		{"negative percent", func(c *Config) { c.TracingSamplePercent = -1 }, "tracing-sample-percent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mutate(&cfg)
			if err := cfg.Validate(); !hasConfigError(err, tc.wantKey, "") {
				t.Fatalf("Validate() = %v, want a ConfigError for %s", err, tc.wantKey)
			}
		})
	}
	cfg := DefaultConfig()
	cfg.TracingOTLPEndpoint, cfg.TracingSamplePercent = "127.0.0.1:4318", 0
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid tracing config rejected: %v", err)
	}
}

// otlpCollector accepts OTLP/HTTP trace exports and keeps their spans.
type otlpCollector struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	resource map[string]*commonpb.AnyValue
	bad      []string // what was wrong with a request, for the test to report
}

func newOTLPCollector(t *testing.T) *otlpCollector {
	c := &otlpCollector{resource: map[string]*commonpb.AnyValue{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		var req coltracepb.ExportTraceServiceRequest
		switch {
		case r.Method != http.MethodPost || r.URL.Path != "/v1/traces":
			c.bad = append(c.bad, r.Method+" "+r.URL.Path)
		case r.Header.Get("Content-Type") != "application/x-protobuf":
			c.bad = append(c.bad, "content type "+r.Header.Get("Content-Type"))
		case err != nil || proto.Unmarshal(body, &req) != nil:
			c.bad = append(c.bad, "undecodable body")
		}
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				c.resource[kv.Key] = kv.Value
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

func spanAttrs(sp *tracepb.Span) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range sp.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// With tracing-otlp-endpoint set, every request becomes a span that
// reaches the collector by the time the broker has closed.
func TestRequestSpansExported(t *testing.T) {
	col := newOTLPCollector(t)
	ts := startServer(t, func(c *Config) {
		c.NodeID = 7
		c.TracingOTLPEndpoint = col.Listener.Addr().String()
	})
	ts.createTopic(t, "traced", 1)
	cl := ts.client(t)
	ts.produce(t, cl, "traced", 0, "a", "b")
	rc := ts.raw(t)
	producePart(rc.do(produceReq(-1, "traced", 9, batchOf(-1, -1, -1, "x"))))
	rc.do(fetchReq(11, 0, -1, "traced", [16]byte{}, map[int32]int64{0: 0}))
	if err := ts.Close(); err != nil { // flushes the spans
		t.Fatal(err)
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	if len(col.bad) > 0 {
		t.Fatalf("bad export requests: %v", col.bad)
	}
	if got := col.resource["service.name"].GetStringValue(); got != "strata" {
		t.Errorf("resource service.name = %q, want strata", got)
	}
	if got := col.resource["strata.node_id"].GetIntValue(); got != 7 {
		t.Errorf("resource strata.node_id = %d, want 7", got)
	}
	byName := map[string][]*tracepb.Span{}
	for _, sp := range col.spans {
		byName[sp.Name] = append(byName[sp.Name], sp)
	}
	for _, want := range []string{"kafka.ApiVersions", "kafka.Metadata", "kafka.CreateTopics", "kafka.Produce", "kafka.Fetch"} {
		if len(byName[want]) == 0 {
			t.Errorf("no %s span (spans: %v)", want, slices.Sorted(maps.Keys(byName)))
		}
	}
	var failed *tracepb.Span
	for _, sp := range byName["kafka.Produce"] {
		if sp.Kind != tracepb.Span_SPAN_KIND_SERVER || sp.EndTimeUnixNano < sp.StartTimeUnixNano || sp.StartTimeUnixNano == 0 {
			t.Errorf("produce span kind %v, %d..%d", sp.Kind, sp.StartTimeUnixNano, sp.EndTimeUnixNano)
		}
		if spanAttrs(sp)["kafka.error"] != nil {
			failed = sp
		}
	}
	if failed == nil {
		t.Fatal("no Produce span carries the UNKNOWN_TOPIC_OR_PARTITION error")
	}
	a := spanAttrs(failed)
	for k, want := range map[string]any{
		"kafka.api_key": int64(0), "kafka.api_version": int64(9), "kafka.client_id": "test",
		"kafka.principal": "User:ANONYMOUS", "kafka.error": "UNKNOWN_TOPIC_OR_PARTITION",
		"kafka.error_code": int64(kerr.UnknownTopicOrPartition.Code),
	} {
		var got any
		if v := a[k]; v != nil {
			if _, ok := v.Value.(*commonpb.AnyValue_IntValue); ok {
				got = v.GetIntValue()
			} else {
				got = v.GetStringValue()
			}
		}
		if got != want {
			t.Errorf("failed produce span: %s = %v, want %v", k, got, want)
		}
	}
	if _, ok := a["kafka.correlation_id"]; !ok {
		t.Errorf("failed produce span has no kafka.correlation_id")
	}
	if failed.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("failed produce span status %v, want error", failed.Status)
	}
}

// Tracing off is the default: no tracer, nothing to flush.
func TestTracingOffByDefault(t *testing.T) {
	m, err := newBrokerMetrics(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer m.shutdown(time.Second)
	if m.tracer != nil || m.traces != nil {
		t.Fatalf("tracer %v without tracing-otlp-endpoint", m.tracer)
	}
}
