package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
)

func TestInstrument(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = provider.Shutdown(context.Background()) })
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := objstore.Instrument(fs, provider.Meter("test"))
	ctx := t.Context()

	body := bytes.Repeat([]byte("x"), 1000)
	if err := s.Put(ctx, "a/1", bytes.NewReader(body), 1000); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/2", bytes.NewReader(body[:10]), 10); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(ctx, "a/1", 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	rc.Close() // a second Close must not count the bytes again
	if _, err := s.Head(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	if err := s.List(ctx, "a/", func(objstore.ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Delete(canceled, "a/1"); err == nil {
		t.Fatal("Delete with a canceled context succeeded")
	}
	if _, err := s.Get(ctx, "", 0, -1); err == nil {
		t.Fatal("Get of an empty key succeeded")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Data
		}
	}

	reqs := sumByAttrs(t, got[objstore.MetricRequests], "op", "outcome")
	for key, want := range map[[2]string]int64{
		{"put", "ok"}:          2,
		{"get", "ok"}:          1,
		{"get", "error"}:       1,
		{"head", "not_found"}:  1,
		{"list", "ok"}:         1, // the callback's error is not the store's
		{"delete", "canceled"}: 1,
	} {
		if reqs[key] != want {
			t.Errorf("requests{op=%s,outcome=%s} = %d, want %d", key[0], key[1], reqs[key], want)
		}
	}
	if len(reqs) != 6 {
		t.Errorf("requests has series %v, want exactly the six above", reqs)
	}

	bytesBy := sumByAttrs(t, got[objstore.MetricBytes], "direction", "")
	if bytesBy[[2]string{"upload", ""}] != 1010 || bytesBy[[2]string{"download", ""}] != 300 {
		t.Errorf("bytes = %v, want upload 1010, download 300", bytesBy)
	}

	hist, ok := got[objstore.MetricDuration].(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is %T, want a float64 histogram", objstore.MetricDuration, got[objstore.MetricDuration])
	}
	counts := map[string]uint64{}
	for _, dp := range hist.DataPoints {
		op, _ := dp.Attributes.Value(attribute.Key("op"))
		counts[op.AsString()] += dp.Count
	}
	if counts["put"] != 2 || counts["get"] != 2 || counts["head"] != 1 || counts["list"] != 1 || counts["delete"] != 1 {
		t.Errorf("duration counts by op = %v", counts)
	}
}

func sumByAttrs(t *testing.T, agg metricdata.Aggregation, k1, k2 string) map[[2]string]int64 {
	t.Helper()
	sum, ok := agg.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("aggregation %T, want an int64 sum", agg)
	}
	if !sum.IsMonotonic {
		t.Errorf("sum is not monotonic (a counter)")
	}
	out := map[[2]string]int64{}
	for _, dp := range sum.DataPoints {
		var key [2]string
		v, _ := dp.Attributes.Value(attribute.Key(k1))
		key[0] = v.AsString()
		if k2 != "" {
			v, _ = dp.Attributes.Value(attribute.Key(k2))
			key[1] = v.AsString()
		}
		out[key] += dp.Value
	}
	return out
}

func TestInstrumentNilMeter(t *testing.T) {
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if s := objstore.Instrument(fs, nil); s != objstore.Store(fs) {
		t.Fatalf("Instrument(s, nil) = %T, want s itself", s)
	}
}

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"a/b/c", true}, {"a.b/.c/d..", true}, {"ünï", true}, {"a b+c", true},
		{"", false}, {"/a", false}, {"a/", false}, {"a//b", false}, {".", false}, {"..", false},
		{"a/./b", false}, {"a/../b", false}, {"a\x00", false}, {"a\\b", false}, {"\xff", false},
	} {
		err := objstore.CheckKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("CheckKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("CheckKey(%q) = %v, not ErrInvalidKey", tc.key, err)
		}
	}
}

func TestCheckRange(t *testing.T) {
	for _, tc := range []struct {
		off, n, size, want int64
		ok                 bool
	}{
		{0, -1, 10, 10, true}, {3, 4, 10, 4, true}, {8, 5, 10, 2, true}, {10, -1, 10, 0, true},
		{10, 5, 10, 0, true}, {0, 0, 0, 0, true}, {0, -1, 0, 0, true},
		{11, -1, 10, 0, false}, {-1, 1, 10, 0, false}, {1, -1, 0, 0, false},
	} {
		got, err := objstore.CheckRange("k", tc.off, tc.n, tc.size)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("CheckRange(off %d, n %d, size %d) = %d, %v; want %d ok=%v", tc.off, tc.n, tc.size, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, objstore.ErrInvalidRange) {
			t.Errorf("CheckRange error %v is not ErrInvalidRange", err)
		}
	}
}
