package broker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Tracing (OpenTelemetry, OTLP/HTTP; off unless tracing-otlp-endpoint is
// set): a span per Kafka request, named kafka.<ApiName>, from its frame
// read to its response written, and a span per object-store call
// (objstore.InstrumentTracing), whose W3C trace context the S3 backend
// passes on in traceparent headers. A Kafka request carries no trace
// context, so each request span is the root of its own trace, sampled by
// tracing-sample-percent; object-store calls made for a traced caller
// follow the caller's decision. Spans leave through a batch processor that
// drops rather than blocks when the collector falls behind, and the queue
// is flushed when the server closes. The provider is the broker's own, not
// OpenTelemetry's global one, so several brokers in one process (tests)
// keep apart.

// Request span attribute keys.
const (
	attrAPIKey        = attribute.Key("kafka.api_key")
	attrAPIVersion    = attribute.Key("kafka.api_version")
	attrCorrelationID = attribute.Key("kafka.correlation_id")
	attrClientID      = attribute.Key("kafka.client_id")
	attrPrincipal     = attribute.Key("kafka.principal")
	attrErrorCode     = attribute.Key("kafka.error_code")
	attrError         = attribute.Key("kafka.error")
)

type tracing struct {
	provider  *sdktrace.TracerProvider
	tracer    trace.Tracer
	transport *http.Transport
	names     map[int16]string // span name per API key, made once
}

// newTracing builds the trace pipeline, or returns nil when tracing is off.
// Nothing is sent until the first batch of spans: an unreachable collector
// shows up as export errors, not as a failed start.
func newTracing(cfg Config) (*tracing, error) {
	if cfg.TracingOTLPEndpoint == "" {
		return nil, nil
	}
	// A transport of our own, not the exporter's shared one, so shutdown
	// can close its idle connections and leave no goroutine behind.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(cfg.TracingOTLPEndpoint),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}),
	}
	if cfg.TracingOTLPInsecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, &ConfigError{Key: "tracing-otlp-endpoint", Msg: err.Error()}
	}
	res := resource.NewSchemaless(
		attribute.String("service.name", "strata"),
		attribute.String("service.instance.id", strconv.Itoa(int(cfg.NodeID))),
		attribute.Int("strata.node_id", int(cfg.NodeID)),
	)
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(float64(cfg.TracingSamplePercent)/100))),
	)
	t := &tracing{provider: provider, tracer: provider.Tracer("github.com/strata-broker/strata/broker"), transport: tr, names: map[int16]string{}}
	for k := range apis {
		t.names[k] = "kafka." + apiName(k)
	}
	return t, nil
}

// shutdown sends the spans still queued and stops the pipeline; a
// collector that does not answer within timeout loses them.
func (t *tracing) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := t.provider.Shutdown(ctx)
	t.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("flush traces: %w", err)
	}
	return nil
}

// traceRequest records rep's request as a finished span: it starts at the
// frame read and ends at end, when the response was written. firstErr is
// the first error code of the response (0: none).
func (s *Server) traceRequest(rep *reply, firstErr int16, end time.Time) {
	name, ok := s.metrics.traces.names[rep.api]
	if !ok {
		name = "kafka." + apiName(rep.api)
	}
	_, span := s.metrics.tracer.Start(context.Background(), name,
		trace.WithTimestamp(rep.start), trace.WithSpanKind(trace.SpanKindServer))
	if !span.IsRecording() {
		span.End()
		return // not sampled: skip the attributes
	}
	client := ""
	if rep.clientID != nil {
		client = *rep.clientID
	}
	span.SetAttributes(
		attribute.String("messaging.system", "kafka"),
		attrAPIKey.Int(int(rep.api)),
		attrAPIVersion.Int(int(rep.version)),
		attrCorrelationID.Int(int(rep.corr)),
		attrClientID.String(client),
		attrPrincipal.String(rep.principal),
	)
	if firstErr != 0 {
		errName := errorName(firstErr)
		span.SetAttributes(attrErrorCode.Int(int(firstErr)), attrError.String(errName))
		span.SetStatus(codes.Error, errName)
	}
	span.End(trace.WithTimestamp(end))
}
