package broker

import (
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// brokerMetrics are the broker's OpenTelemetry instruments, exported for
// Prometheus on the admin listener. Names follow strata_<area>_<name>_<unit>
// and Kafka's concepts (bytes/messages in and out per topic, requests per
// API). Attribute sets are built once (per API key, per topic) so hot paths
// do not allocate for them.
type brokerMetrics struct {
	provider *sdkmetric.MeterProvider
	registry *prometheus.Registry
	meter    metric.Meter

	requests    metric.Int64Counter
	requestDur  metric.Float64Histogram
	bytesIn     metric.Int64Counter
	messagesIn  metric.Int64Counter
	bytesOut    metric.Int64Counter
	connections metric.Int64UpDownCounter

	apiAttrs map[int16]metric.MeasurementOption
}

func newBrokerMetrics() (*brokerMetrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m := &brokerMetrics{provider: provider, registry: reg, meter: provider.Meter("strata"), apiAttrs: map[int16]metric.MeasurementOption{}}
	mt := m.meter
	if m.requests, err = mt.Int64Counter("strata_broker_requests", metric.WithDescription("Kafka requests handled, by API.")); err != nil {
		return nil, err
	}
	if m.requestDur, err = mt.Float64Histogram("strata_broker_request_duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a request's arrival to its response written, by API."),
		metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, err
	}
	if m.bytesIn, err = mt.Int64Counter("strata_broker_topic_bytes_in", metric.WithUnit("By"), metric.WithDescription("Record batch bytes appended, by topic.")); err != nil {
		return nil, err
	}
	if m.messagesIn, err = mt.Int64Counter("strata_broker_topic_messages_in", metric.WithDescription("Records appended, by topic.")); err != nil {
		return nil, err
	}
	if m.bytesOut, err = mt.Int64Counter("strata_broker_topic_bytes_out", metric.WithUnit("By"), metric.WithDescription("Record bytes sent to consumers, by topic.")); err != nil {
		return nil, err
	}
	if m.connections, err = mt.Int64UpDownCounter("strata_broker_connections", metric.WithDescription("Open client connections.")); err != nil {
		return nil, err
	}
	for k := int16(0); k < 100; k++ {
		if name := kmsg.NameForKey(k); name != "" {
			m.apiAttrs[k] = metric.WithAttributeSet(attribute.NewSet(attribute.String("api", name)))
		}
	}
	return m, nil
}

func (m *brokerMetrics) api(key int16) metric.MeasurementOption {
	if o, ok := m.apiAttrs[key]; ok {
		return o
	}
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("api", strconv.Itoa(int(key)))))
}

func topicAttrs(topic string) metric.MeasurementOption {
	return metric.WithAttributeSet(attribute.NewSet(attribute.String("topic", topic)))
}

// registerGauges adds the observable gauges read from broker state at
// scrape time.
func (s *Server) registerGauges() error {
	mt := s.metrics.meter
	purgatory, err := mt.Int64ObservableGauge("strata_broker_fetch_purgatory_size", metric.WithDescription("Fetches waiting in a long poll."))
	if err != nil {
		return err
	}
	logSize, err := mt.Int64ObservableGauge("strata_log_size", metric.WithUnit("By"), metric.WithDescription("Partition log size, by tier (local disk or remote object store)."))
	if err != nil {
		return err
	}
	segments, err := mt.Int64ObservableGauge("strata_log_segments", metric.WithDescription("Segments of a partition log, by tier."))
	if err != nil {
		return err
	}
	endOffset, err := mt.Int64ObservableGauge("strata_log_end_offset", metric.WithDescription("Log end offset of a partition."))
	if err != nil {
		return err
	}
	startOffset, err := mt.Int64ObservableGauge("strata_log_start_offset", metric.WithDescription("Log start offset of a partition (both tiers)."))
	if err != nil {
		return err
	}
	activeController, err := mt.Int64ObservableGauge("strata_cluster_active_controller", metric.WithDescription("1 on the broker leading the metadata quorum (the active controller), else 0."))
	if err != nil {
		return err
	}
	underReplicated, err := mt.Int64ObservableGauge("strata_cluster_under_replicated_partitions", metric.WithDescription("Partitions this broker leads whose ISR is smaller than their replica set."))
	if err != nil {
		return err
	}
	offline, err := mt.Int64ObservableGauge("strata_cluster_offline_partitions", metric.WithDescription("Partitions without a leader (reported by the active controller)."))
	if err != nil {
		return err
	}
	groupLag, err := mt.Int64ObservableGauge("strata_group_lag", metric.WithDescription("High watermark minus the group's committed offset, per group and partition."))
	if err != nil {
		return err
	}
	_, err = mt.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		o.ObserveInt64(purgatory, s.fetchWaiters.Load())
		s.observeCluster(o, activeController, underReplicated, offline)
		s.observeGroupLag(ctx, o, groupLag)
		if s.parts == nil {
			return nil
		}
		for _, t := range s.parts.all() {
			for _, p := range t.parts {
				tp := []attribute.KeyValue{attribute.String("topic", t.name), attribute.String("partition", strconv.Itoa(int(p.index)))}
				local := metric.WithAttributes(append(tp, attribute.String("tier", "local"))...)
				remote := metric.WithAttributes(append(tp, attribute.String("tier", "remote"))...)
				o.ObserveInt64(logSize, p.log.Size(), local)
				o.ObserveInt64(segments, int64(p.log.NumSegments()), local)
				rb, rs, _, _ := s.tier.Stats(t.id, p.index)
				o.ObserveInt64(logSize, rb, remote)
				o.ObserveInt64(segments, int64(rs), remote)
				o.ObserveInt64(endOffset, p.log.LogEndOffset(), metric.WithAttributes(tp...))
				o.ObserveInt64(startOffset, p.log.LogStartOffset(), metric.WithAttributes(tp...))
			}
		}
		return nil
	}, purgatory, logSize, segments, endOffset, startOffset, activeController, underReplicated, offline, groupLag)
	return err
}

func (s *Server) observeCluster(o metric.Observer, active, under, offline metric.Int64ObservableGauge) {
	if s.meta == nil {
		return
	}
	leader, ok := s.meta.LeaderID()
	isController := ok && leader == s.cfg.NodeID
	var u, off int64
	for _, t := range s.meta.Topics() {
		for _, p := range t.Partitions {
			if p.Leader == s.cfg.NodeID && len(p.ISR) < len(p.Replicas) {
				u++
			}
			if p.Leader < 0 {
				off++
			}
		}
	}
	o.ObserveInt64(under, u)
	if isController {
		o.ObserveInt64(active, 1)
		o.ObserveInt64(offline, off)
	} else {
		o.ObserveInt64(active, 0)
		o.ObserveInt64(offline, 0)
	}
}

// observeGroupLag reports, for every group with committed offsets, how far
// each partition's commit is behind the high watermark. It asks the group
// coordinator the way a client would (ListGroups, OffsetFetch).
func (s *Server) observeGroupLag(ctx context.Context, o metric.Observer, lag metric.Int64ObservableGauge) {
	if s.groups == nil || s.parts == nil {
		return
	}
	lreq := kmsg.NewPtrListGroupsRequest()
	lreq.Version = 4
	for _, g := range s.groups.ListGroups(ctx, lreq).Groups {
		freq := kmsg.NewPtrOffsetFetchRequest()
		freq.Version = 7
		freq.Group = g.Group
		resp := s.groups.OffsetFetch(ctx, freq)
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.ErrorCode != 0 || p.Offset < 0 {
					continue
				}
				_, part, err := s.parts.get(t.Topic, p.Partition)
				if err != nil {
					continue
				}
				o.ObserveInt64(lag, max(part.log.HighWatermark()-p.Offset, 0), metric.WithAttributes(
					attribute.String("group", g.Group), attribute.String("topic", t.Topic),
					attribute.String("partition", strconv.Itoa(int(p.Partition)))))
			}
		}
	}
}

// startAdmin serves /metrics, /healthz, /readyz (and /debug/pprof with
// admin-pprof) on the admin listener. Its address is logged (tests listen on :0).
func (s *Server) startAdmin() error {
	if s.cfg.AdminListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.AdminListen)
	if err != nil {
		return &ConfigError{Key: "admin-listen", Msg: err.Error()}
	}
	s.adminLn = ln
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready\n", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if s.cfg.AdminPprof {
		// Off by default: profiles expose internals and cost CPU.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.adminSrv = srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			s.log.Error("admin listener stopped", "err", err)
		}
	}()
	s.log.Info("admin listener", "addr", ln.Addr().String())
	return nil
}

// AdminAddr is the bound admin listener address, nil when disabled.
func (s *Server) AdminAddr() net.Addr {
	if s.adminLn == nil {
		return nil
	}
	return s.adminLn.Addr()
}

// observeRequest counts a request and its latency once its reply is out
// (or dropped, for acks=0).
func (s *Server) observeRequest(rep *reply) {
	if rep.start.IsZero() {
		return // fallback replies made before dispatch
	}
	o := s.metrics.api(rep.api)
	s.metrics.requests.Add(context.Background(), 1, o)
	s.metrics.requestDur.Record(context.Background(), time.Since(rep.start).Seconds(), o)
}
