package bench

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// scrape is a trimmed /metrics page in the shape the broker's OpenTelemetry
// Prometheus exporter writes.
const scrape = `# HELP strata_tiering_object_store_requests_total Object store requests by operation and outcome.
# TYPE strata_tiering_object_store_requests_total counter
strata_tiering_object_store_requests_total{op="get",outcome="ok"} 200
strata_tiering_object_store_requests_total{op="get",outcome="error"} 3
strata_tiering_object_store_requests_total{op="put",outcome="ok"} 288
strata_tiering_object_store_bytes_total{direction="upload"} 5.42e+08
strata_tiering_object_store_bytes_total{direction="download"} 1000
strata_tiering_cache_hits_total 10 1700000000000
strata_tiering_upload_lag_segments 0
strata_tiering_object_store_request_duration_seconds_bucket{op="get",le="+Inf"} 203
weird{path="a \"quoted\" \\ back\nslash",x="}"} NaN
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(scrape))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 9 {
		t.Fatalf("%d samples, want 9: %+v", len(m), m)
	}
	tests := []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{metricStoreRequests, nil, 491},
		{metricStoreRequests, map[string]string{"op": "get"}, 203},
		{metricStoreRequests, map[string]string{"op": "get", "outcome": "ok"}, 200},
		{metricStoreRequests, map[string]string{"op": "delete"}, 0},
		{metricStoreBytes, map[string]string{"direction": "upload"}, 542e6},
		{metricCacheHits, nil, 10}, // the timestamp is not the value
		{"strata_tiering_object_store_request_duration_seconds_bucket", map[string]string{"le": "+Inf"}, 203},
		{"absent_total", nil, 0},
	}
	for _, tt := range tests {
		if got := m.Sum(tt.name, tt.match); got != tt.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tt.name, tt.match, got, tt.want)
		}
	}
	by := m.SumBy(metricStoreRequests, "op", nil)
	if len(by) != 2 || by["get"] != 203 || by["put"] != 288 {
		t.Errorf("SumBy op = %v", by)
	}
	var weird metricSample
	for _, s := range m {
		if s.Name == "weird" {
			weird = s
		}
	}
	if weird.Labels["path"] != "a \"quoted\" \\ back\nslash" || weird.Labels["x"] != "}" || !math.IsNaN(weird.Value) {
		t.Errorf("escaped labels = %q, value %v", weird.Labels, weird.Value)
	}
}

func TestParseMetricsRejects(t *testing.T) {
	for _, line := range []string{
		"novalue",
		`name{op="get" 1`,
		`name{op=get} 1`,
		`name{op="get} 1`,
		`name{op="get"} one`,
		`name 1 2 3`,
	} {
		if _, err := parseMetrics(strings.NewReader(line + "\n")); !errors.Is(err, errBadMetricLine) {
			t.Errorf("%q: err = %v, want errBadMetricLine", line, err)
		}
	}
}

func TestStoreActivity(t *testing.T) {
	parse := func(s string) Metrics {
		t.Helper()
		m, err := parseMetrics(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	// The counters of a fresh broker appear at their first increment:
	// absent before means zero.
	before := parse(`strata_tiering_object_store_requests_total{op="put",outcome="ok"} 4
strata_tiering_object_store_bytes_total{direction="upload"} 100
`)
	after := parse(`strata_tiering_object_store_requests_total{op="put",outcome="ok"} 292
strata_tiering_object_store_requests_total{op="put",outcome="error"} 2
strata_tiering_object_store_requests_total{op="list",outcome="ok"} 1
strata_tiering_object_store_requests_total{op="get",outcome="ok"} 0
strata_tiering_object_store_bytes_total{direction="upload"} 500000100
strata_tiering_cache_hits_total 7
strata_tiering_cache_misses_total 1
`)
	a, err := storeActivity(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if a.Requests["put"] != 290 || a.Requests["list"] != 1 || len(a.Requests) != 2 {
		t.Errorf("requests = %v (a zero counter must not be listed)", a.Requests)
	}
	if a.Failed["put"] != 2 || len(a.Failed) != 1 {
		t.Errorf("failed = %v", a.Failed)
	}
	if a.Uploaded != 500e6 || a.Downloaded != 0 || a.CacheHits != 7 || a.CacheMiss != 1 {
		t.Errorf("bytes/cache = %+v", a)
	}
	if a.Total() != 291 {
		t.Errorf("total = %d", a.Total())
	}
	// 290 puts over 0.5 GB is 580 per GB.
	if got := a.PerGB("put", 500e6); got != 580 {
		t.Errorf("puts per GB = %v", got)
	}
	if got := a.PerGB("", 500e6); got != 582 {
		t.Errorf("requests per GB = %v", got)
	}
	if got := a.PerGB("put", 0); got != 0 {
		t.Errorf("per GB of nothing = %v", got)
	}
	if got := strings.Join(a.opsOf(), ","); got != "put,list" {
		t.Errorf("ops = %s", got)
	}
	if got := formatOps(a); got != "put 290 (2 failed), list 1" {
		t.Errorf("formatOps = %q", got)
	}
	// A counter that went down means the scrapes span a restart.
	if _, err := storeActivity(after, before); err == nil {
		t.Error("no error for counters that went down")
	}
}
