package objstore_test

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
)

// Operators' dashboards use the names as /metrics shows them: the exporter
// must not add or change suffixes.
func TestPrometheusNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := objstore.Instrument(fs, mp.Meter("test"))
	if err := s.Put(t.Context(), "k", bytes.NewReader([]byte("abc")), 3); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	page := rec.Body.String()
	for _, want := range []string{
		"# TYPE strata_tiering_object_store_requests_total counter",
		`strata_tiering_object_store_requests_total{op="put",`,
		"# TYPE strata_tiering_object_store_request_duration_seconds histogram",
		"# TYPE strata_tiering_object_store_bytes_total counter",
		`strata_tiering_object_store_bytes_total{direction="upload",`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
