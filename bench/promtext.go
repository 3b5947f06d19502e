package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// metricSample is one line of the Prometheus text exposition format.
type metricSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Metrics is one scrape of a broker's /metrics.
type Metrics []metricSample

// errBadMetricLine wraps every parse failure of parseMetrics.
var errBadMetricLine = errors.New("bad metrics line")

// parseMetrics reads the Prometheus text format (version 0.0.4): comment
// and blank lines are skipped, every other line is
// `name{label="value",...} value [timestamp]`. Label values may hold the
// escapes \\, \" and \n. Only what the bench needs is checked: a line it
// cannot split is an error, so a format change shows up rather than
// silently reading as zero.
func parseMetrics(r io.Reader) (Metrics, error) {
	var out Metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseMetricLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", n, line, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseMetricLine(line string) (metricSample, error) {
	s := metricSample{}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("%w: no value", errBadMetricLine)
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		labels, after, err := parseLabels(rest[1:])
		if err != nil {
			return s, err
		}
		s.Labels, rest = labels, after
	}
	fields := strings.Fields(rest)
	if len(fields) < 1 || len(fields) > 2 {
		return s, fmt.Errorf("%w: want a value and an optional timestamp", errBadMetricLine)
	}
	v, err := parseMetricValue(fields[0])
	if err != nil {
		return s, fmt.Errorf("%w: value %q", errBadMetricLine, fields[0])
	}
	s.Value = v
	return s, nil
}

func parseMetricValue(f string) (float64, error) {
	switch f {
	case "+Inf", "Inf":
		return math.Inf(1), nil
	case "-Inf":
		return math.Inf(-1), nil
	case "NaN":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(f, 64)
}

// parseLabels parses `k="v",k2="v2"}` (the opening brace already taken)
// and returns the labels and what follows the closing brace.
func parseLabels(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", fmt.Errorf("%w: unterminated labels", errBadMetricLine)
		}
		if s[0] == '}' {
			return labels, s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || eq+1 >= len(s) || s[eq+1] != '"' {
			return nil, "", fmt.Errorf("%w: label without a quoted value", errBadMetricLine)
		}
		name := strings.TrimSpace(s[:eq])
		var val strings.Builder
		j := eq + 2
		closed := false
		for ; j < len(s); j++ {
			c := s[j]
			if c == '\\' && j+1 < len(s) {
				j++
				switch s[j] {
				case 'n':
					val.WriteByte('\n')
				default: // \\ and \"
					val.WriteByte(s[j])
				}
				continue
			}
			if c == '"' {
				closed = true
				break
			}
			val.WriteByte(c)
		}
		if !closed {
			return nil, "", fmt.Errorf("%w: unterminated label value", errBadMetricLine)
		}
		labels[name] = val.String()
		s = strings.TrimLeft(s[j+1:], " \t")
		if strings.HasPrefix(s, ",") {
			s = s[1:]
		}
	}
}

// Sum adds the values of the series called name whose labels include
// every pair of match. A series that does not exist yet sums to zero (an
// OpenTelemetry counter appears at its first increment).
func (m Metrics) Sum(name string, match map[string]string) float64 {
	var total float64
	for _, s := range m {
		if s.Name == name && labelsMatch(s.Labels, match) {
			total += s.Value
		}
	}
	return total
}

// SumBy is Sum grouped by the value of label by.
func (m Metrics) SumBy(name, by string, match map[string]string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.Name == name && labelsMatch(s.Labels, match) {
			out[s.Labels[by]] += s.Value
		}
	}
	return out
}

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Broker metric names the cold-read run reads (see tiering/objstore and
// tiering/metrics.go; the bench talks to the broker only from outside, so
// it repeats the names rather than importing them).
const (
	metricStoreRequests = "strata_tiering_object_store_requests_total"
	metricStoreBytes    = "strata_tiering_object_store_bytes_total"
	metricUploadLagSegs = "strata_tiering_upload_lag_segments"
	metricCacheHits     = "strata_tiering_cache_hits_total"
	metricCacheMisses   = "strata_tiering_cache_misses_total"
)

// storeOps are the object-store operations the broker counts, in the
// order the report prints them.
var storeOps = []string{"put", "get", "head", "list", "delete"}

// StoreActivity is what the broker did to the object store between two
// scrapes: requests by operation (ok and failed), and payload bytes. The
// broker counts store operations: a multipart upload is one put and SDK
// retries are not counted again.
type StoreActivity struct {
	Requests   map[string]int64 `json:"requests"`         // by op, every outcome
	Failed     map[string]int64 `json:"failed,omitempty"` // by op, outcome other than ok
	Uploaded   int64            `json:"uploaded_bytes"`
	Downloaded int64            `json:"downloaded_bytes"`
	CacheHits  int64            `json:"cache_hits"`
	CacheMiss  int64            `json:"cache_misses"`
}

// storeActivity is after minus before for the broker's object-store
// counters. Counters only rise within one process; a negative difference
// (a restart between the scrapes) is an error rather than a figure.
func storeActivity(before, after Metrics) (StoreActivity, error) {
	a := StoreActivity{Requests: map[string]int64{}, Failed: map[string]int64{}}
	diff := func(name string, match map[string]string) (int64, error) {
		d := after.Sum(name, match) - before.Sum(name, match)
		if d < 0 {
			return 0, fmt.Errorf("counter %s%v went down (%v): the broker restarted between scrapes", name, match, d)
		}
		return int64(math.Round(d)), nil
	}
	ops := map[string]bool{}
	for _, m := range []Metrics{before, after} {
		for op := range m.SumBy(metricStoreRequests, "op", nil) {
			ops[op] = true
		}
	}
	for op := range ops {
		all, err := diff(metricStoreRequests, map[string]string{"op": op})
		if err != nil {
			return a, err
		}
		ok, err := diff(metricStoreRequests, map[string]string{"op": op, "outcome": "ok"})
		if err != nil {
			return a, err
		}
		if all > 0 {
			a.Requests[op] = all
		}
		if all > ok {
			a.Failed[op] = all - ok
		}
	}
	var err error
	if a.Uploaded, err = diff(metricStoreBytes, map[string]string{"direction": "upload"}); err != nil {
		return a, err
	}
	if a.Downloaded, err = diff(metricStoreBytes, map[string]string{"direction": "download"}); err != nil {
		return a, err
	}
	if a.CacheHits, err = diff(metricCacheHits, nil); err != nil {
		return a, err
	}
	if a.CacheMiss, err = diff(metricCacheMisses, nil); err != nil {
		return a, err
	}
	return a, nil
}

// Total is every request of every operation.
func (a StoreActivity) Total() int64 {
	var n int64
	for _, v := range a.Requests {
		n += v
	}
	return n
}

// PerGB is the number of requests of op (all operations when op is "")
// per 10^9 bytes; zero when no bytes moved.
func (a StoreActivity) PerGB(op string, bytes int64) float64 {
	if bytes <= 0 {
		return 0
	}
	n := a.Total()
	if op != "" {
		n = a.Requests[op]
	}
	return float64(n) / (float64(bytes) / 1e9)
}

// opsOf lists the operations with requests: storeOps first, in order,
// then any other the broker reports.
func (a StoreActivity) opsOf() []string {
	var out []string
	seen := map[string]bool{}
	for _, op := range storeOps {
		seen[op] = true
		if a.Requests[op] > 0 {
			out = append(out, op)
		}
	}
	var extra []string
	for op := range a.Requests {
		if !seen[op] {
			extra = append(extra, op)
		}
	}
	sort.Strings(extra)
	return append(out, extra...)
}

// scrapeMetrics fetches and parses http://addr/metrics.
func scrapeMetrics(ctx context.Context, addr string) (Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	m, err := parseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return m, nil
}
