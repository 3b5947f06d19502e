package s3store_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/s3store"
)

// headServer answers every HeadObject with a 10-byte object and remembers
// the trace headers and the signed header list of each request.
type headServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newHeadServer(t *testing.T) *headServer {
	hs := &headServer{}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hs.mu.Lock()
		hs.seen = append(hs.seen, r.Header.Clone())
		hs.mu.Unlock()
		w.Header().Set("Content-Length", "10")
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func (hs *headServer) last(t *testing.T) http.Header {
	t.Helper()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.seen) == 0 {
		t.Fatal("the server saw no request")
	}
	return hs.seen[len(hs.seen)-1]
}

// A tracing proxy or object store can join the broker's trace: the span
// in a call's context travels as a W3C traceparent header, unsigned so a
// proxy may rewrite it.
func TestTraceContextPropagation(t *testing.T) {
	hs := newHeadServer(t)
	s, err := s3store.New(t.Context(), s3store.Config{Bucket: "b", S3Options: objstore.S3Options{
		Endpoint: hs.URL, Region: "us-east-1", PathStyle: true, AccessKey: "K", SecretKey: "S",
	}})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := s.Head(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if tp := hs.last(t).Get("Traceparent"); tp != "" {
		t.Errorf("without a span: traceparent %q, want none", tp)
	}

	tid, _ := trace.TraceIDFromHex("0102030405060708090a0b0c0d0e0f10")
	sid, _ := trace.SpanIDFromHex("1112131415161718")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	if _, err := s.Head(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	h := hs.last(t)
	if got, want := h.Get("Traceparent"), "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01"; got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
	auth := strings.ToLower(h.Get("Authorization"))
	if !strings.Contains(auth, "signedheaders=") || strings.Contains(auth, "traceparent") {
		t.Errorf("Authorization %q: want a SigV4 signature that does not cover traceparent", auth)
	}
}
