package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objtest"
)

func newTracer(t *testing.T) (trace.Tracer, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("test"), rec
}

func newFileStore(t *testing.T) objstore.Store {
	t.Helper()
	fs, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// The wrapper must not change what a store does.
func TestInstrumentTracingConformance(t *testing.T) {
	objtest.Run(t, func(t *testing.T) objstore.Store {
		tr, _ := newTracer(t)
		return objstore.InstrumentTracing(newFileStore(t), tr)
	})
}

func TestInstrumentTracingNilTracer(t *testing.T) {
	fs := newFileStore(t)
	if s := objstore.InstrumentTracing(fs, nil); s != fs {
		t.Fatalf("InstrumentTracing(s, nil) = %T, want s itself", s)
	}
}

func TestInstrumentTracingSpans(t *testing.T) {
	tr, rec := newTracer(t)
	spy := &ctxSpy{Store: newFileStore(t)}
	s := objstore.InstrumentTracing(spy, tr)

	// A caller's span (a Kafka request's) is the parent of the store's.
	ctx, parent := tr.Start(t.Context(), "caller")
	body := bytes.Repeat([]byte("x"), 1000)
	if err := s.Put(ctx, "a/1", bytes.NewReader(body), 1000); err != nil {
		t.Fatal(err)
	}
	if got := spy.last.SpanID(); !spy.last.IsValid() || got == parent.SpanContext().SpanID() {
		t.Fatalf("the backend saw span context %v, want the Put span's (a child of the caller)", spy.last)
	}
	rc, err := s.Get(ctx, "a/1", 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Ended()); n != 1 {
		t.Fatalf("%d spans ended before the Get body was closed, want 1 (the Put)", n)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	rc.Close() // a second Close must not end the span again
	if _, err := s.Head(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "a/1", "a/2"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "", bytes.NewReader(nil), 0); err == nil {
		t.Fatal("Put of an empty key succeeded")
	}
	stop := errors.New("stop")
	if err := s.Put(ctx, "b/1", bytes.NewReader(body), 10); err != nil {
		t.Fatal(err)
	}
	if err := s.List(ctx, "b/", func(objstore.ObjectInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatal(err)
	}
	parent.End()

	type want struct {
		name   string
		attrs  map[attribute.Key]attribute.Value
		failed bool
	}
	wants := []want{
		{objstore.SpanPut, map[attribute.Key]attribute.Value{objstore.AttrKey: attribute.StringValue("a/1"), objstore.AttrBytes: attribute.Int64Value(1000), objstore.AttrOutcome: attribute.StringValue("ok")}, false},
		{objstore.SpanGet, map[attribute.Key]attribute.Value{objstore.AttrKey: attribute.StringValue("a/1"), objstore.AttrOffset: attribute.Int64Value(100), objstore.AttrLength: attribute.Int64Value(300), objstore.AttrBytes: attribute.Int64Value(300)}, false},
		{objstore.SpanHead, map[attribute.Key]attribute.Value{objstore.AttrKey: attribute.StringValue("missing"), objstore.AttrOutcome: attribute.StringValue("not_found")}, false},
		{objstore.SpanDelete, map[attribute.Key]attribute.Value{objstore.AttrKey: attribute.StringValue("a/1"), objstore.AttrKeys: attribute.IntValue(2)}, false},
		{objstore.SpanPut, map[attribute.Key]attribute.Value{objstore.AttrOutcome: attribute.StringValue("error")}, true},
		{objstore.SpanPut, map[attribute.Key]attribute.Value{objstore.AttrKey: attribute.StringValue("b/1")}, false},
		{objstore.SpanList, map[attribute.Key]attribute.Value{objstore.AttrPrefix: attribute.StringValue("b/"), objstore.AttrObjects: attribute.Int64Value(1), objstore.AttrOutcome: attribute.StringValue("ok")}, false},
		{"caller", nil, false},
	}
	spans := rec.Ended()
	if len(spans) != len(wants) {
		for _, sp := range spans {
			t.Logf("span %s %v", sp.Name(), sp.Attributes())
		}
		t.Fatalf("%d spans, want %d", len(spans), len(wants))
	}
	for i, w := range wants {
		sp := spans[i]
		if sp.Name() != w.name {
			t.Errorf("span %d is %s, want %s", i, sp.Name(), w.name)
			continue
		}
		got := map[attribute.Key]attribute.Value{}
		for _, kv := range sp.Attributes() {
			got[kv.Key] = kv.Value
		}
		for k, v := range w.attrs {
			if got[k] != v {
				t.Errorf("%s (span %d): %s = %v, want %v", w.name, i, k, got[k].Emit(), v.Emit())
			}
		}
		if failed := sp.Status().Code == codes.Error; failed != w.failed {
			t.Errorf("%s (span %d): status %v, want failed=%v", w.name, i, sp.Status(), w.failed)
		}
		if w.name != "caller" {
			if sp.Parent().SpanID() != parent.SpanContext().SpanID() {
				t.Errorf("%s (span %d): parent %v, want the caller's span", w.name, i, sp.Parent().SpanID())
			}
			if sp.SpanKind() != trace.SpanKindClient {
				t.Errorf("%s (span %d): kind %v, want client", w.name, i, sp.SpanKind())
			}
		}
	}
}

// ctxSpy remembers the span context the backend was called with.
type ctxSpy struct {
	objstore.Store
	last trace.SpanContext
}

func (c *ctxSpy) Put(ctx context.Context, key string, body io.ReaderAt, size int64) error {
	c.last = trace.SpanContextFromContext(ctx)
	return c.Store.Put(ctx, key, body, size)
}
