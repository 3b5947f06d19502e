package objstore

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metric names (OpenTelemetry; the Prometheus exporter keeps them as is).
const (
	MetricRequests = "strata_tiering_object_store_requests_total"
	MetricDuration = "strata_tiering_object_store_request_duration_seconds"
	MetricBytes    = "strata_tiering_object_store_bytes_total"
)

// Label values of MetricRequests. outcome is one of "ok", "not_found",
// "canceled" (the caller's context ended) or "error".
const (
	OpPut    = "put"
	OpGet    = "get"
	OpHead   = "head"
	OpDelete = "delete"
	OpList   = "list"
)

var (
	ops      = [...]string{OpPut, OpGet, OpHead, OpDelete, OpList}
	outcomes = [...]string{"ok", "not_found", "canceled", "error"}
)

// Instrument wraps s so that every call is counted by op and outcome and
// timed by op, and payload bytes are counted by direction (upload: bytes of
// successful Puts; download: bytes read from Get bodies, added when the body
// is closed). A Get's duration is the time to the response headers, not to
// the end of the body. With a nil meter Instrument returns s unchanged.
//
// An error returned by List's callback is the caller's, not the store's: it
// counts as outcome "ok".
func Instrument(s Store, meter metric.Meter) Store {
	if meter == nil {
		return s
	}
	// Instrument creation fails only for invalid names or options, which are
	// constants here; the meter then hands back a working no-op instrument,
	// so the errors carry nothing actionable.
	reqs, _ := meter.Int64Counter(MetricRequests,
		metric.WithDescription("Object store requests by operation and outcome."),
		metric.WithUnit("{request}"))
	dur, _ := meter.Float64Histogram(MetricDuration,
		metric.WithDescription("Object store request latency by operation (Get: time to the response headers)."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
	bytes, _ := meter.Int64Counter(MetricBytes,
		metric.WithDescription("Object payload bytes uploaded by Put and downloaded by Get."),
		metric.WithUnit("By"))
	in := &instrumented{s: s, reqs: reqs, dur: dur, bytes: bytes,
		up:   metric.WithAttributeSet(attribute.NewSet(attribute.String("direction", "upload"))),
		down: metric.WithAttributeSet(attribute.NewSet(attribute.String("direction", "download"))),
	}
	// Attribute sets are built once: recording then allocates nothing for
	// them on the request path.
	for i, op := range ops {
		in.durAttr[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("op", op)))
		for j, oc := range outcomes {
			in.reqAttr[i][j] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("op", op), attribute.String("outcome", oc)))
		}
	}
	return in
}

type instrumented struct {
	s        Store
	reqs     metric.Int64Counter
	dur      metric.Float64Histogram
	bytes    metric.Int64Counter
	up, down metric.MeasurementOption
	durAttr  [len(ops)]metric.MeasurementOption
	reqAttr  [len(ops)][len(outcomes)]metric.MeasurementOption
}

const (
	opPut = iota
	opGet
	opHead
	opDelete
	opList
)

func outcomeOf(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotFound):
		return 1
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return 2
	default:
		return 3
	}
}

func (in *instrumented) record(ctx context.Context, op int, start time.Time, err error) {
	// The caller's context may be over already; the measurement must still
	// be recorded.
	ctx = context.WithoutCancel(ctx)
	in.reqs.Add(ctx, 1, in.reqAttr[op][outcomeOf(err)])
	in.dur.Record(ctx, time.Since(start).Seconds(), in.durAttr[op])
}

func (in *instrumented) Put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	start := time.Now()
	err := in.s.Put(ctx, key, body, size)
	in.record(ctx, opPut, start, err)
	if err == nil {
		in.bytes.Add(context.WithoutCancel(ctx), size, in.up)
	}
	return err
}

func (in *instrumented) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := in.s.Get(ctx, key, off, n)
	in.record(ctx, opGet, start, err)
	if err != nil {
		return nil, err
	}
	return &countingBody{rc: rc, in: in, ctx: context.WithoutCancel(ctx)}, nil
}

func (in *instrumented) Head(ctx context.Context, key string) (ObjectInfo, error) {
	start := time.Now()
	info, err := in.s.Head(ctx, key)
	in.record(ctx, opHead, start, err)
	return info, err
}

func (in *instrumented) Delete(ctx context.Context, keys ...string) error {
	start := time.Now()
	err := in.s.Delete(ctx, keys...)
	in.record(ctx, opDelete, start, err)
	return err
}

func (in *instrumented) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	start := time.Now()
	var fnErr error
	err := in.s.List(ctx, prefix, func(info ObjectInfo) error {
		fnErr = fn(info)
		return fnErr
	})
	recErr := err
	if fnErr != nil && errors.Is(err, fnErr) {
		recErr = nil
	}
	in.record(ctx, opList, start, recErr)
	return err
}

// countingBody counts the bytes read from a Get body and reports them once,
// at Close.
type countingBody struct {
	rc   io.ReadCloser
	in   *instrumented
	ctx  context.Context
	n    int64
	once sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}

func (b *countingBody) Close() error {
	b.once.Do(func() {
		if b.n > 0 {
			b.in.bytes.Add(b.ctx, b.n, b.in.down)
		}
	})
	return b.rc.Close()
}
