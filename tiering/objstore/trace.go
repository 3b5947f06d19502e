package objstore

import (
	"context"
	"errors"
	"io"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Span names of InstrumentTracing, one per Store method.
const (
	SpanPut    = "objstore.Put"
	SpanGet    = "objstore.Get"
	SpanHead   = "objstore.Head"
	SpanDelete = "objstore.Delete"
	SpanList   = "objstore.List"
)

// Span attribute keys of InstrumentTracing.
const (
	AttrKey     = attribute.Key("objstore.key")     // the object key (Delete: the first one)
	AttrKeys    = attribute.Key("objstore.keys")    // Delete: how many keys
	AttrPrefix  = attribute.Key("objstore.prefix")  // List
	AttrObjects = attribute.Key("objstore.objects") // List: objects visited
	AttrBytes   = attribute.Key("objstore.bytes")   // Put: body size; Get: bytes read; Head: object size
	AttrOffset  = attribute.Key("objstore.offset")  // Get
	AttrLength  = attribute.Key("objstore.length")  // Get: bytes asked for, -1 = to the end
	AttrOutcome = attribute.Key("objstore.outcome") // ok, not_found, canceled or error (as MetricRequests)
)

// InstrumentTracing wraps s so that every call is a client span named
// objstore.<Method> carrying the key and the payload bytes. The call runs
// with the span in its context, so a backend that propagates W3C trace
// context (s3store puts a traceparent header on its HTTP requests) lets a
// tracing proxy or object store join the trace, and a caller's span (a
// Kafka request's) becomes the parent. A Get's span lasts until its body is
// closed, so it covers the download, not just the response headers. Only
// outcome "error" marks a span as failed: a missing object or a caller's
// cancellation is an answer, not a fault of the store. With a nil tracer
// InstrumentTracing returns s unchanged, so tracing costs nothing when off.
func InstrumentTracing(s Store, tracer trace.Tracer) Store {
	if tracer == nil {
		return s
	}
	return &traced{s: s, tr: tracer}
}

type traced struct {
	s  Store
	tr trace.Tracer
}

func (t *traced) start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tr.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
}

// end records err's outcome on span and ends it.
func end(span trace.Span, err error) {
	oc := outcomeOf(err)
	span.SetAttributes(AttrOutcome.String(outcomes[oc]))
	if err != nil {
		span.RecordError(err)
		if outcomes[oc] == "error" {
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

func (t *traced) Put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	ctx, span := t.start(ctx, SpanPut, AttrKey.String(key), AttrBytes.Int64(size))
	err := t.s.Put(ctx, key, body, size)
	end(span, err)
	return err
}

func (t *traced) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	ctx, span := t.start(ctx, SpanGet, AttrKey.String(key), AttrOffset.Int64(off), AttrLength.Int64(n))
	rc, err := t.s.Get(ctx, key, off, n)
	if err != nil {
		end(span, err)
		return nil, err
	}
	return &tracedBody{rc: rc, span: span}, nil
}

func (t *traced) Head(ctx context.Context, key string) (ObjectInfo, error) {
	ctx, span := t.start(ctx, SpanHead, AttrKey.String(key))
	info, err := t.s.Head(ctx, key)
	if err == nil {
		span.SetAttributes(AttrBytes.Int64(info.Size))
	}
	end(span, err)
	return info, err
}

func (t *traced) Delete(ctx context.Context, keys ...string) error {
	attrs := []attribute.KeyValue{AttrKeys.Int(len(keys))}
	if len(keys) > 0 {
		// Only the first key: a batch can name a thousand.
		attrs = append(attrs, AttrKey.String(keys[0]))
	}
	ctx, span := t.start(ctx, SpanDelete, attrs...)
	err := t.s.Delete(ctx, keys...)
	end(span, err)
	return err
}

func (t *traced) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	ctx, span := t.start(ctx, SpanList, AttrPrefix.String(prefix))
	var (
		n     int64
		fnErr error
	)
	err := t.s.List(ctx, prefix, func(info ObjectInfo) error {
		n++
		fnErr = fn(info)
		return fnErr
	})
	span.SetAttributes(AttrObjects.Int64(n))
	// As for the metrics: the callback's error is the caller's.
	recErr := err
	if fnErr != nil && errors.Is(err, fnErr) {
		recErr = nil
	}
	end(span, recErr)
	return err
}

// tracedBody ends a Get's span when the body is closed, with the bytes
// actually read (a reader may stop early).
type tracedBody struct {
	rc   io.ReadCloser
	span trace.Span
	n    int64
	err  error // first read error other than EOF
	once sync.Once
}

func (b *tracedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *tracedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(func() {
		b.span.SetAttributes(AttrBytes.Int64(b.n))
		end(b.span, b.err)
	})
	return err
}
