package tiering

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/metric"
)

// Metric names (OpenTelemetry; the Prometheus exporter keeps them as is).
// Object store requests, their outcomes and latency are counted by
// objstore.Instrument around the store.
const (
	MetricUploadBytes       = "strata_tiering_upload_bytes_total"
	MetricDownloadBytes     = "strata_tiering_download_bytes_total"
	MetricUploadLagSegments = "strata_tiering_upload_lag_segments"
	MetricUploadLagBytes    = "strata_tiering_upload_lag_bytes"
	MetricCacheBytes        = "strata_tiering_cache_bytes"
	MetricCacheHits         = "strata_tiering_cache_hits_total"
	MetricCacheMisses       = "strata_tiering_cache_misses_total"
)

type metrics struct {
	uploadBytes, downloadBytes, hits, misses metric.Int64Counter
	reg                                      metric.Registration
}

func (mt *metrics) init(meter metric.Meter, m *Manager) error {
	var err error
	counter := func(name, desc, unit string) metric.Int64Counter {
		c, e := meter.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		if e != nil && err == nil {
			err = fmt.Errorf("tiering: metric %s: %w", name, e)
		}
		return c
	}
	mt.uploadBytes = counter(MetricUploadBytes, "Bytes of segment objects uploaded (log and indexes, committed or not).", "By")
	mt.downloadBytes = counter(MetricDownloadBytes, "Bytes downloaded from the object store for remote reads.", "By")
	mt.hits = counter(MetricCacheHits, "Remote reads whose first chunk was in the cache.", "{read}")
	mt.misses = counter(MetricCacheMisses, "Remote reads that had to wait for a download.", "{read}")
	lagSegs, e1 := meter.Int64ObservableGauge(MetricUploadLagSegments,
		metric.WithDescription("Sealed local segments not yet in the remote manifest."), metric.WithUnit("{segment}"))
	lagBytes, e2 := meter.Int64ObservableGauge(MetricUploadLagBytes,
		metric.WithDescription("Bytes of sealed local segments not yet in the remote manifest."), metric.WithUnit("By"))
	cacheBytes, e3 := meter.Int64ObservableGauge(MetricCacheBytes,
		metric.WithDescription("Bytes of downloaded chunks in the remote read cache."), metric.WithUnit("By"))
	for _, e := range []error{e1, e2, e3} {
		if e != nil && err == nil {
			err = fmt.Errorf("tiering: metrics: %w", e)
		}
	}
	if err != nil {
		return err
	}
	mt.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		var segs, bytes int64
		for _, p := range m.partitions() {
			log, cfg, removed := p.state()
			if log == nil || !cfg.RemoteEnabled || removed {
				continue
			}
			s, b := uploadLag(log, m.cfg.Manifests.Manifest(p.tp.id, p.tp.p))
			segs += int64(s)
			bytes += b
		}
		o.ObserveInt64(lagSegs, segs)
		o.ObserveInt64(lagBytes, bytes)
		o.ObserveInt64(cacheBytes, m.cache.size())
		return nil
	}, lagSegs, lagBytes, cacheBytes)
	if err != nil {
		return fmt.Errorf("tiering: metrics callback: %w", err)
	}
	return nil
}

func (mt *metrics) close() {
	if mt.reg != nil {
		mt.reg.Unregister()
	}
}
