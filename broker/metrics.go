package broker

import (
	"context"
	"errors"
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
	"go.opentelemetry.io/otel/trace"
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

	// Kafka's RequestMetrics breakdown of requestDur and its ErrorsPerSec,
	// by API (observeRequest).
	queueTime    metric.Float64Histogram
	localTime    metric.Float64Histogram
	remoteTime   metric.Float64Histogram
	throttleTime metric.Float64Histogram
	sendTime     metric.Float64Histogram
	reqErrors    metric.Int64Counter
	errAttrs     errorAttrs

	tlsHandshakeFailures metric.Int64Counter // created by openTLS (tls.go)

	isrShrinks, isrExpands metric.Int64Counter // Kafka's IsrShrinksPerSec, IsrExpandsPerSec

	apiAttrs map[int16]apiOpts

	// tracer is nil unless tracing-otlp-endpoint is set: the request path
	// checks it and does nothing more when tracing is off.
	tracer trace.Tracer
	traces *tracing
}

// requestBuckets serve every request latency histogram, so the parts of
// the breakdown can be compared with the whole.
var requestBuckets = metric.WithExplicitBucketBoundaries(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

func newBrokerMetrics(cfg Config) (*brokerMetrics, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, err
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m := &brokerMetrics{provider: provider, registry: reg, meter: provider.Meter("strata"), apiAttrs: map[int16]apiOpts{}}
	mt := m.meter
	if m.requests, err = mt.Int64Counter("strata_broker_requests", metric.WithDescription("Kafka requests handled, by API.")); err != nil {
		return nil, err
	}
	if m.isrShrinks, err = mt.Int64Counter("strata_broker_isr_shrinks", metric.WithDescription("ISR shrinks of partitions this broker leads (a follower fell behind).")); err != nil {
		return nil, err
	}
	if m.isrExpands, err = mt.Int64Counter("strata_broker_isr_expands", metric.WithDescription("ISR expansions of partitions this broker leads (a follower caught up).")); err != nil {
		return nil, err
	}
	if m.requestDur, err = mt.Float64Histogram("strata_broker_request_duration", metric.WithUnit("s"),
		metric.WithDescription("Time from a request's arrival to its response written, by API."), requestBuckets); err != nil {
		return nil, err
	}
	for _, h := range []struct {
		dst        *metric.Float64Histogram
		name, desc string
	}{
		{&m.queueTime, "strata_broker_request_queue_time", "Time from a request's frame read to its handler's start (decoding, authentication gate), by API."},
		{&m.localTime, "strata_broker_request_local_time", "Time in the handler's synchronous part on the connection's reader, by API."},
		{&m.remoteTime, "strata_broker_request_remote_time", "Time in the deferred part after the handler returned (fsync wait, long poll, remote-tier read, group rebalance); 0 when none, by API."},
		{&m.throttleTime, "strata_broker_request_throttle_time", "Quota throttle time given in the response (the connection is muted for it), by API."},
		{&m.sendTime, "strata_broker_request_response_send_time", "Time writing the response to the socket, by API."},
	} {
		if *h.dst, err = mt.Float64Histogram(h.name, metric.WithUnit("s"), metric.WithDescription(h.desc), requestBuckets); err != nil {
			return nil, err
		}
	}
	if m.reqErrors, err = mt.Int64Counter("strata_broker_request_errors", metric.WithDescription(
		"Error codes other than NONE in responses, by API and error name; top level and per partition, topic, group or resource, as Kafka's ErrorsPerSec.")); err != nil {
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
		if kmsg.NameForKey(k) != "" {
			m.apiAttrs[k] = newAPIOpts(k)
		}
	}
	if m.traces, err = newTracing(cfg); err != nil {
		return nil, err
	}
	if m.traces != nil {
		m.tracer = m.traces.tracer
	}
	return m, nil
}

// shutdown flushes the spans still queued to the collector (bounded by
// timeout) and stops both providers.
func (m *brokerMetrics) shutdown(timeout time.Duration) error {
	err := m.provider.Shutdown(context.Background())
	if m.traces != nil {
		err = errors.Join(err, m.traces.shutdown(timeout))
	}
	return err
}

// apiOpts is an API's attribute set as ready-made option slices: passing
// a single option to Add or Record would allocate the variadic slice on
// every call (it escapes through the instrument's interface).
type apiOpts struct {
	add []metric.AddOption
	rec []metric.RecordOption
}

func newAPIOpts(key int16) apiOpts {
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String("api", apiName(key))))
	return apiOpts{add: []metric.AddOption{o}, rec: []metric.RecordOption{o}}
}

func (m *brokerMetrics) api(key int16) apiOpts {
	if o, ok := m.apiAttrs[key]; ok {
		return o
	}
	return newAPIOpts(key)
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
	producePurgatory, err := mt.Int64ObservableGauge("strata_broker_produce_purgatory_size", metric.WithDescription("Produce requests waiting for their records to be durable (acks=1) or on every in-sync replica (acks=all)."))
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
		o.ObserveInt64(producePurgatory, s.produceWaiters.Load())
		s.observeCluster(o, activeController, underReplicated, offline)
		s.observeGroupLag(ctx, o, groupLag)
		if s.parts == nil {
			return nil
		}
		for _, t := range s.parts.all() {
			for _, p := range t.parts {
				if p == nil {
					continue
				}
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
	}, purgatory, producePurgatory, logSize, segments, endOffset, startOffset, activeController, underReplicated, offline, groupLag)
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

// observeRequest counts a request, its latency and its error codes once
// its reply is written, and makes its span when tracing is on. It runs on
// the connection's writer goroutine; the timestamps on rep were set by the
// reader (start, handled, local), the deferred part (done) and the writer
// (sending).
func (s *Server) observeRequest(rep *reply) {
	if rep.start.IsZero() {
		return // fallback replies made before dispatch
	}
	now := time.Now()
	m := s.metrics
	ctx := context.Background()
	o := m.api(rep.api)
	m.requests.Add(ctx, 1, o.add...)
	m.requestDur.Record(ctx, now.Sub(rep.start).Seconds(), o.rec...)
	if !rep.handled.IsZero() {
		m.queueTime.Record(ctx, rep.handled.Sub(rep.start).Seconds(), o.rec...)
		m.localTime.Record(ctx, rep.local.Sub(rep.handled).Seconds(), o.rec...)
		var remote time.Duration
		if !rep.done.IsZero() {
			// The deferred part starts inside the handler; what counts is
			// how long the reply waited for it after the handler returned.
			remote = max(rep.done.Sub(rep.local), 0)
		}
		m.remoteTime.Record(ctx, remote.Seconds(), o.rec...)
		m.throttleTime.Record(ctx, replyThrottle(rep).Seconds(), o.rec...)
		m.sendTime.Record(ctx, now.Sub(rep.sending).Seconds(), o.rec...)
	}
	var errs errorTally
	if rep.resp != nil {
		tallyErrors(rep.resp, &errs)
		for i := range errs.n {
			m.reqErrors.Add(ctx, errs.counts[i], m.errAttrs.get(rep.api, errs.codes[i])...)
		}
		for code, n := range errs.more {
			m.reqErrors.Add(ctx, n, m.errAttrs.get(rep.api, code)...)
		}
	}
	if m.tracer != nil {
		s.traceRequest(rep, errs.first, now)
	}
}

// replyThrottle is the throttle the client was told: the larger of the
// reply's quota throttles and what the handler put into the response
// itself (Fetch computes its consumer-quota throttle there).
func replyThrottle(rep *reply) time.Duration {
	t := max(rep.throttle, rep.quotaThrottle)
	if tr, ok := rep.resp.(kmsg.ThrottleResponse); ok {
		if ms, _ := tr.Throttle(); ms > 0 {
			t = max(t, time.Duration(ms)*time.Millisecond)
		}
	}
	return t
}

// isrChange counts one ISR change of a partition this broker leads.
func (m *brokerMetrics) isrChange(shrink bool) {
	if shrink {
		m.isrShrinks.Add(context.Background(), 1)
	} else {
		m.isrExpands.Add(context.Background(), 1)
	}
}
