package quota

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/metadata"
)

// fakeClock is a settable clock; tests move it explicitly instead of sleeping.
type fakeClock struct {
	mu   sync.Mutex
	base time.Time
	off  time.Duration
}

func newFakeClock() *fakeClock {
	return &fakeClock{base: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.off)
}

// Set moves the clock to d after the manager was created.
func (c *fakeClock) Set(d time.Duration) {
	c.mu.Lock()
	c.off = d
	c.mu.Unlock()
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func newTestManager(t testing.TB) (*Manager, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	return New(Config{Samples: 11, Window: time.Second, Now: clk.Now}), clk
}

// qn turns test shorthand into an entity component: "" absent,
// "<default>" Kafka's default, anything else a name.
func qn(s string) metadata.QuotaName {
	switch s {
	case "":
		return metadata.QuotaName{}
	case "<default>":
		return metadata.QuotaName{Set: true, Default: true}
	}
	return metadata.QuotaName{Set: true, Name: s}
}

func ce(user, client string) metadata.QuotaEntity {
	return metadata.QuotaEntity{User: qn(user), ClientID: qn(client)}
}

func ipe(ip string) metadata.QuotaEntity {
	return metadata.QuotaEntity{IP: qn(ip)}
}

// total is the usage currently inside the measured span (tests).
func (s *sensor) total(w window, now int64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	total, _ := s.measure(w, now)
	return total
}

type quotas = map[metadata.QuotaEntity]map[string]float64

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

func TestResolvePrecedence(t *testing.T) {
	both := tags{user: "alice", client: "c1", hasUser: true, hasClient: true}
	userOnly := tags{user: "alice", hasUser: true}
	clientOnly := tags{client: "c1", hasClient: true}
	levels := []struct {
		name string
		e    metadata.QuotaEntity
		want tags
	}{
		{"user+client-id", ce("alice", "c1"), both},
		{"user+default client-id", ce("alice", "<default>"), both},
		{"user", ce("alice", ""), userOnly},
		{"default user+client-id", ce("<default>", "c1"), both},
		{"default user+default client-id", ce("<default>", "<default>"), both},
		{"default user", ce("<default>", ""), userOnly},
		{"client-id", ce("", "c1"), clientOnly},
		{"default client-id", ce("", "<default>"), clientOnly},
	}
	// Entities of other users and clients must never match alice/c1.
	noise := []metadata.QuotaEntity{
		ce("bob", "c1"), ce("alice", "c2"), ce("bob", ""), ce("", "c2"),
		ce("bob", "<default>"), ce("<default>", "c2"), ipe("<default>"),
	}
	for i, lv := range levels {
		t.Run(lv.name, func(t *testing.T) {
			q := quotas{}
			for _, e := range noise {
				q[e] = map[string]float64{ProducerByteRate: 1}
			}
			// This level and every less specific one are configured; the
			// most specific present must win.
			for j := i; j < len(levels); j++ {
				q[levels[j].e] = map[string]float64{ProducerByteRate: float64(100 * (j + 1))}
			}
			qs := buildQuotaSet(q)
			gotTags, gotBound, ok := resolve(qs.client[kindProduce], "alice", "c1")
			if !ok || gotTags != lv.want || gotBound != float64(100*(i+1)) {
				t.Fatalf("resolve = %+v, %v, %v; want %+v, %v", gotTags, gotBound, ok, lv.want, 100*(i+1))
			}
			if b, ok := limit(qs.client[kindProduce], gotTags); !ok || b != gotBound {
				t.Fatalf("limit(%+v) = %v, %v; want %v (must agree with resolve)", gotTags, b, ok, gotBound)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		q := quotas{}
		for _, e := range noise {
			q[e] = map[string]float64{ProducerByteRate: 1}
		}
		if tg, b, ok := resolve(buildQuotaSet(q).client[kindProduce], "alice", "c1"); ok {
			t.Fatalf("resolve = %+v, %v; want no quota", tg, b)
		}
	})
}

// Each key resolves on its own: an entity without the key does not stop
// the search for it.
func TestResolvePerKey(t *testing.T) {
	q := quotas{
		ce("alice", "c1"):   {ConsumerByteRate: 10},
		ce("<default>", ""): {ProducerByteRate: 20, RequestPercentage: 30},
	}
	qs := buildQuotaSet(q)
	if tg, b, _ := resolve(qs.client[kindProduce], "alice", "c1"); b != 20 || tg != (tags{user: "alice", hasUser: true}) {
		t.Errorf("produce: %+v %v; want default user's 20 on alice's own sensor", tg, b)
	}
	if _, b, _ := resolve(qs.client[kindFetch], "alice", "c1"); b != 10 {
		t.Errorf("fetch: %v; want 10", b)
	}
	if _, b, _ := resolve(qs.client[kindRequest], "alice", "c1"); b != 30 {
		t.Errorf("request: %v; want 30", b)
	}
}

// Clients sharing a resolved entity share one rate, as Kafka's sensors do;
// a <default> entity gives every actual name a rate of its own.
func TestSensorSharing(t *testing.T) {
	type rec struct{ user, client string }
	tests := []struct {
		name   string
		entity metadata.QuotaEntity
		a, b   rec
		shared bool
	}{
		{"user quota shared across client-ids", ce("alice", ""), rec{"alice", "c1"}, rec{"alice", "c2"}, true},
		{"default user per user", ce("<default>", ""), rec{"alice", "c1"}, rec{"bob", "c1"}, false},
		{"default user shared across client-ids", ce("<default>", ""), rec{"alice", "c1"}, rec{"alice", "c2"}, true},
		{"client-id quota shared across users", ce("", "c1"), rec{"alice", "c1"}, rec{"bob", "c1"}, true},
		{"default client-id per client-id", ce("", "<default>"), rec{"alice", "c1"}, rec{"alice", "c2"}, false},
		{"default user+default client per pair", ce("<default>", "<default>"), rec{"alice", "c1"}, rec{"alice", "c2"}, false},
		{"user+default client per client", ce("alice", "<default>"), rec{"alice", "c1"}, rec{"alice", "c2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newTestManager(t)
			m.Update(quotas{tt.entity: {ProducerByteRate: 1000}})
			// 6000 bytes over the 10 s minimum span is 600 B/s: fine alone,
			// 1200 B/s (2 s of throttle) when the two share a sensor.
			if got := m.RecordProduce(tt.a.user, tt.a.client, 6000); got != 0 {
				t.Fatalf("first client throttled %v", got)
			}
			got := m.RecordProduce(tt.b.user, tt.b.client, 6000)
			want := time.Duration(0)
			if tt.shared {
				want = 2 * time.Second
			}
			if got != want {
				t.Fatalf("second client throttle = %v, want %v", got, want)
			}
		})
	}
}

// Throttle times against values worked out by hand with Kafka's formula:
// rate = total / max(now - oldest window start, (samples-1) windows);
// throttle = (rate - quota) / quota * span.
func TestThrottleMath(t *testing.T) {
	type step struct {
		at    time.Duration
		bytes int64
		want  time.Duration
	}
	tests := []struct {
		name  string
		quota float64
		steps []step
	}{
		{"burst, new window, expiry, rolling span", 1000, []step{
			{0, 5000, 0},                 // 5000/10s = 500 B/s
			{0, 6000, ms(1000)},          // 11000/10s = 1100: 100/1000*10s
			{ms(2500), 1000, ms(1500)},   // 12000/(2.5s+8 empty windows) = 12000/10.5s: 12 - 10.5
			{ms(20000), 100, 0},          // every older window expired: 100/10s
			{ms(30500), 20000, ms(9600)}, // 20100 over 10.5s (span past samples-1 windows): 20.1 - 10.5
			{ms(31200), 0, ms(9300)},     // the 100 B window aged out: 20000 over 0.7s+10s: 20 - 10.7
		}},
		{"exactly at quota is fine", 1000, []step{{0, 10000, 0}}},
		{"violation under half a millisecond rounds to none", 4000, []step{{0, 40001, 0}}},
		{"smallest violation", 1000, []step{{0, 10001, ms(1)}}},
		{"capped at the full span", 1000, []step{{0, 1_000_000, 11 * time.Second}}},
		{"zero quota: any usage gets the cap", 0, []step{{0, 1, 11 * time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, clk := newTestManager(t)
			m.Update(quotas{ce("alice", ""): {ProducerByteRate: tt.quota, ConsumerByteRate: tt.quota}})
			for i, st := range tt.steps {
				clk.Set(st.at)
				if got := m.RecordProduce("alice", "c", st.bytes); got != st.want {
					t.Fatalf("step %d (t=%v, %d B): produce throttle %v, want %v", i, st.at, st.bytes, got, st.want)
				}
				if got := m.RecordFetch("alice", "c", st.bytes); got != st.want {
					t.Fatalf("step %d (t=%v, %d B): fetch throttle %v, want %v", i, st.at, st.bytes, got, st.want)
				}
			}
		})
	}
}

func TestRequestPercentage(t *testing.T) {
	m, clk := newTestManager(t)
	m.Update(quotas{ce("", "<default>"): {RequestPercentage: 50}})
	// 4 s of handler time in the 10 s minimum span is 40%.
	if got := m.RecordRequestTime("alice", "c", 4*time.Second); got != 0 {
		t.Fatalf("40%%: throttle %v", got)
	}
	// 5.2 s -> 52%: (52-50)/50 * 10 s.
	if got := m.RecordRequestTime("alice", "c", 1200*time.Millisecond); got != ms(400) {
		t.Fatalf("52%%: throttle %v, want 400ms", got)
	}
	// Kafka caps request-time throttles at one window.
	clk.Set(ms(100))
	if got := m.RecordRequestTime("alice", "c", 20*time.Second); got != time.Second {
		t.Fatalf("way over: throttle %v, want the 1s window", got)
	}
	// Another client-id under <default> client-id has its own rate.
	if got := m.RecordRequestTime("alice", "other", time.Second); got != 0 {
		t.Fatalf("other client-id throttled %v", got)
	}
}

func TestUnrecordFetchAndMaxFetchBytes(t *testing.T) {
	m, _ := newTestManager(t)
	if got := m.MaxFetchBytes("alice", "c"); got != math.MaxInt64 {
		t.Fatalf("no quota: MaxFetchBytes = %d", got)
	}
	m.Update(quotas{ce("alice", ""): {ConsumerByteRate: 1000}})
	// quota * (samples-1) windows
	if got := m.MaxFetchBytes("alice", "c"); got != 10000 {
		t.Fatalf("MaxFetchBytes = %d, want 10000", got)
	}
	if got := m.MaxFetchBytes("bob", "c"); got != math.MaxInt64 {
		t.Fatalf("unquota'd user: MaxFetchBytes = %d", got)
	}
	if got := m.RecordFetch("alice", "c", 11000); got != ms(1000) {
		t.Fatalf("throttle %v, want 1s", got)
	}
	// The throttled response goes out empty; its bytes are taken back.
	m.UnrecordFetch("alice", "c", 11000)
	if got := m.RecordFetch("alice", "c", 9000); got != 0 {
		t.Fatalf("after unrecord: throttle %v, want 0", got)
	}
	m.UnrecordFetch("bob", "c", 10) // no quota: nothing to do, must not panic
}

func TestConnectionRate(t *testing.T) {
	m, clk := newTestManager(t)
	if !m.AllowConnection("10.0.0.1") {
		t.Fatal("no quotas: connection refused")
	}
	m.Update(quotas{
		ipe("10.0.0.1"):  {ConnectionCreationRate: 2},
		ipe("<default>"): {ConnectionCreationRate: 1},
		ce("alice", ""):  {ProducerByteRate: 5}, // other entity kinds do not limit connections
	})
	allow := func(ip string, n int) {
		t.Helper()
		for i := range n {
			if !m.AllowConnection(ip) {
				t.Fatalf("%s: connection %d refused", ip, i+1)
			}
		}
	}
	refuse := func(ip string) {
		t.Helper()
		if m.AllowConnection(ip) {
			t.Fatalf("%s: connection accepted over quota", ip)
		}
	}
	// 2/s over the 10 s minimum span: 20 at once, the 21st would be 2.1/s.
	allow("10.0.0.1", 20)
	refuse("10.0.0.1")
	refuse("::ffff:10.0.0.1") // the same address written as IPv4-mapped IPv6
	// Refused attempts are not counted: 21 over 10.4 s is still over...
	clk.Set(ms(10400))
	refuse("10.0.0.1")
	// ...but 21 over 10.5 s is exactly 2/s.
	clk.Set(ms(10500))
	allow("10.0.0.1", 1)

	// Default IP quota: each address has its own rate.
	allow("10.0.0.2", 10)
	refuse("10.0.0.2")
	allow("10.0.0.3", 10)
	allow("2001:db8::1", 10)
	refuse("2001:db8::1")

	// Without a default, only the listed IP is limited.
	m.Update(quotas{ipe("10.0.0.1"): {ConnectionCreationRate: 2}})
	allow("10.0.0.2", 100)
	if n := len(m.ips); n != 1 {
		t.Fatalf("%d IP sensors after the default went away, want 1", n)
	}
}

func TestUpdate(t *testing.T) {
	t.Run("bound change keeps history", func(t *testing.T) {
		m, _ := newTestManager(t)
		m.Update(quotas{ce("alice", ""): {ProducerByteRate: 1000}})
		if got := m.RecordProduce("alice", "c", 9000); got != 0 {
			t.Fatalf("throttle %v", got)
		}
		m.Update(quotas{ce("alice", ""): {ProducerByteRate: 800}})
		// 9000 over 10 s = 900 > 800: 9000/800 - 10 s.
		if got := m.RecordProduce("alice", "c", 0); got != ms(1250) {
			t.Fatalf("after lowering the quota: throttle %v, want 1.25s", got)
		}
	})
	t.Run("resolution moving to a new entity starts fresh", func(t *testing.T) {
		m, _ := newTestManager(t)
		base := quotas{ce("<default>", ""): {ProducerByteRate: 1000}}
		m.Update(base)
		m.RecordProduce("alice", "c1", 9000)
		m.Update(quotas{
			ce("<default>", ""): {ProducerByteRate: 1000},
			ce("alice", "c1"):   {ProducerByteRate: 1000},
		})
		if got := m.RecordProduce("alice", "c1", 2000); got != 0 {
			t.Fatalf("alice/c1 on its new entity: throttle %v, want 0 (fresh sensor)", got)
		}
		// alice/c2 still resolves to alice's <default>-user sensor, which
		// kept its 9000 bytes: 11000 over 10 s.
		if got := m.RecordProduce("alice", "c2", 2000); got != ms(1000) {
			t.Fatalf("alice/c2: throttle %v, want 1s", got)
		}
	})
	t.Run("removed quota drops sensors", func(t *testing.T) {
		m, _ := newTestManager(t)
		m.Update(quotas{ce("alice", ""): {ProducerByteRate: 1000}, ipe("<default>"): {ConnectionCreationRate: 1}})
		m.RecordProduce("alice", "c", 20000)
		m.AllowConnection("10.0.0.1")
		m.Update(nil)
		if got := m.RecordProduce("alice", "c", 20000); got != 0 {
			t.Fatalf("no quota: throttle %v", got)
		}
		if len(m.sensors) != 0 || len(m.clients) != 0 || len(m.ips) != 0 {
			t.Fatalf("state left: %d sensors, %d clients, %d ips", len(m.sensors), len(m.clients), len(m.ips))
		}
		m.Update(quotas{ce("alice", ""): {ProducerByteRate: 1000}})
		if got := m.RecordProduce("alice", "c", 5000); got != 0 {
			t.Fatalf("re-added quota: throttle %v, want 0 (no old history)", got)
		}
	})
	t.Run("identical update keeps the cache", func(t *testing.T) {
		m, _ := newTestManager(t)
		q := quotas{ce("alice", ""): {ProducerByteRate: 1000}}
		m.Update(q)
		m.RecordProduce("alice", "c", 1)
		c := m.clients[clientKey{"alice", "c"}]
		m.Update(quotas{ce("alice", ""): {ProducerByteRate: 1000}})
		if m.clients[clientKey{"alice", "c"}] != c {
			t.Fatal("an unchanged update discarded the resolution cache")
		}
	})
	t.Run("input not retained", func(t *testing.T) {
		m, _ := newTestManager(t)
		q := quotas{ce("alice", ""): {ProducerByteRate: 1000}}
		m.Update(q)
		q[ce("alice", "")][ProducerByteRate] = 1
		if got := m.RecordProduce("alice", "c", 5000); got != 0 {
			t.Fatalf("caller's later edit took effect: throttle %v", got)
		}
	})
	t.Run("ignored values", func(t *testing.T) {
		m, _ := newTestManager(t)
		m.Update(quotas{
			ce("alice", ""):                       {ProducerByteRate: math.NaN(), "controller_mutation_rate": 1},
			{User: qn("bob"), IP: qn("10.0.0.1")}: {ProducerByteRate: 1, ConnectionCreationRate: 1}, // not an entity
		})
		if got := m.RecordProduce("alice", "c", 1<<30); got != 0 {
			t.Fatalf("NaN quota enforced: %v", got)
		}
		if got := m.RecordProduce("bob", "c", 1<<30); got != 0 {
			t.Fatalf("mixed IP entity enforced: %v", got)
		}
		for range 100 {
			if !m.AllowConnection("10.0.0.1") {
				t.Fatal("mixed IP entity limited connections")
			}
		}
	})
}

func TestIdleExpiry(t *testing.T) {
	m, clk := newTestManager(t)
	m.Update(quotas{ce("<default>", ""): {ProducerByteRate: 1000, ConsumerByteRate: 1000}})
	m.RecordProduce("alice", "c", 1)
	m.RecordProduce("bob", "c", 1)
	m.RecordProduce("dave", "c", 1)
	m.RecordFetch("dave", "c", 1)

	clk.Set(30 * time.Minute)
	m.RecordProduce("bob", "c", 1)
	m.RecordProduce("dave", "c", 1) // dave keeps producing, stops fetching

	clk.Set(61 * time.Minute)
	m.RecordProduce("carol", "c", 1) // runs the sweep

	if _, ok := m.clients[clientKey{"alice", "c"}]; ok {
		t.Error("idle client alice still cached")
	}
	if _, ok := m.sensors[sensorKey{kindProduce, tags{user: "alice", hasUser: true}}]; ok {
		t.Error("idle sensor of alice still kept")
	}
	if _, ok := m.clients[clientKey{"bob", "c"}]; !ok {
		t.Error("active client bob dropped")
	}
	// dave is active, so the fetch sensor his cached client holds stays,
	// idle or not, and every client of dave keeps sharing it.
	s := m.sensors[sensorKey{kindFetch, tags{user: "dave", hasUser: true}}]
	if s == nil {
		t.Fatal("fetch sensor held by active client dave dropped")
	}
	m.RecordFetch("dave", "c", 1)
	m.RecordFetch("dave", "c2", 1)
	if m.clients[clientKey{"dave", "c"}].sensors[kindFetch] != s || m.clients[clientKey{"dave", "c2"}].sensors[kindFetch] != s {
		t.Fatal("dave's clients do not share one fetch sensor")
	}
	// The first fetch (t=0) aged out of the span: only the two new ones count.
	if got := s.total(m.win, m.clock()); got != 2 {
		t.Fatalf("fetch sensor total %v, want 2", got)
	}

	// Once dave goes quiet too, everything of his goes.
	clk.Set(3 * time.Hour)
	m.RecordProduce("carol", "c", 1)
	if len(m.clients) != 1 || len(m.sensors) != 2 {
		t.Fatalf("after everyone but carol went idle: %d clients, %d sensors; want carol's 1 and 2 (produce, fetch)", len(m.clients), len(m.sensors))
	}

	// IP sensors expire too.
	m.Update(quotas{ipe("<default>"): {ConnectionCreationRate: 1}})
	m.AllowConnection("10.0.0.1")
	clk.Advance(2 * time.Hour)
	m.AllowConnection("10.0.0.2")
	if _, ok := m.ips[parseIP("10.0.0.1")]; ok {
		t.Error("idle IP sensor kept")
	}
}

// No usage is lost when many connections of one entity record at once.
func TestConcurrentRecordsShareSensor(t *testing.T) {
	m, _ := newTestManager(t)
	m.Update(quotas{ce("alice", ""): {ProducerByteRate: 1e12}})
	const goroutines, each = 8, 1000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			client := fmt.Sprintf("c%d", g%3)
			for range each {
				if got := m.RecordProduce("alice", client, 1); got != 0 {
					t.Errorf("throttled %v", got)
					return
				}
			}
		})
	}
	wg.Wait()
	s := m.sensors[sensorKey{kindProduce, tags{user: "alice", hasUser: true}}]
	if got := s.total(m.win, m.clock()); got != goroutines*each {
		t.Fatalf("total %v, want %d", got, goroutines*each)
	}
}

// Everything at once, for the race detector: recording, quota changes,
// connection checks and sweeps.
func TestConcurrentUpdate(t *testing.T) {
	m, clk := newTestManager(t)
	configs := []quotas{
		{ce("<default>", ""): {ProducerByteRate: 100, ConsumerByteRate: 100, RequestPercentage: 1}, ipe("<default>"): {ConnectionCreationRate: 5}},
		{ce("", "<default>"): {ProducerByteRate: 50}, ce("u1", "c1"): {ConsumerByteRate: 10}, ipe("10.0.0.1"): {ConnectionCreationRate: 1}},
		nil,
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				u, c := fmt.Sprintf("u%d", i%4), fmt.Sprintf("c%d", (i+g)%5)
				for _, d := range []time.Duration{
					m.RecordProduce(u, c, 100),
					m.RecordFetch(u, c, 100),
					m.RecordRequestTime(u, c, time.Millisecond),
				} {
					if d < 0 || d > 11*time.Second {
						t.Errorf("throttle %v out of range", d)
					}
				}
				m.UnrecordFetch(u, c, 50)
				m.MaxFetchBytes(u, c)
				m.AllowConnection(fmt.Sprintf("10.0.0.%d", i%3))
			}
		})
	}
	for i := range 200 {
		m.Update(configs[i%len(configs)])
		clk.Advance(7 * time.Minute) // sweeps run and find idle state
	}
	close(stop)
	wg.Wait()
}

func TestNoAllocs(t *testing.T) {
	run := func(t *testing.T, m *Manager) {
		t.Helper()
		for name, f := range map[string]func(){
			"produce":  func() { m.RecordProduce("alice", "c", 100) },
			"fetch":    func() { m.RecordFetch("alice", "c", 100) },
			"request":  func() { m.RecordRequestTime("alice", "c", time.Millisecond) },
			"unrecord": func() { m.UnrecordFetch("alice", "c", 100) },
			"conn":     func() { m.AllowConnection("10.0.0.1") },
		} {
			if n := testing.AllocsPerRun(200, f); n != 0 {
				t.Errorf("%s: %v allocations per call", name, n)
			}
		}
	}
	t.Run("no quotas", func(t *testing.T) {
		m, _ := newTestManager(t)
		run(t, m)
	})
	t.Run("quotas for others", func(t *testing.T) {
		m, _ := newTestManager(t)
		m.Update(quotas{
			ce("bob", ""):   {ProducerByteRate: 1, ConsumerByteRate: 1, RequestPercentage: 1},
			ipe("10.9.9.9"): {ConnectionCreationRate: 1},
		})
		run(t, m)
	})
	t.Run("quota applies", func(t *testing.T) {
		m, clk := newTestManager(t)
		m.Update(quotas{
			ce("alice", ""):  {ProducerByteRate: 1, ConsumerByteRate: 1, RequestPercentage: 1},
			ipe("<default>"): {ConnectionCreationRate: 1},
		})
		// Fill every sample slot first, so the measured calls also roll windows.
		for range 20 {
			m.RecordProduce("alice", "c", 1)
			m.RecordFetch("alice", "c", 1)
			m.RecordRequestTime("alice", "c", 1)
			m.AllowConnection("10.0.0.1")
			clk.Advance(time.Second)
		}
		run(t, m)
	})
}

func BenchmarkRecordProduce(b *testing.B) {
	for _, bc := range []struct {
		name string
		q    quotas
	}{
		{"no-quotas", nil},
		{"quota-for-others", quotas{ce("bob", ""): {ProducerByteRate: 1}}},
		{"quota-applies", quotas{ce("alice", ""): {ProducerByteRate: 1e12}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := New(Config{})
			m.Update(bc.q)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m.RecordProduce("alice", "client", 1024)
				}
			})
		})
	}
}

// Client-ids that come and go, none of them under a quota, do not pile up.
func TestClientIDChurn(t *testing.T) {
	m, clk := newTestManager(t)
	m.Update(quotas{ce("bob", ""): {ProducerByteRate: 1000}})
	for i := range 1000 {
		m.RecordProduce("alice", fmt.Sprintf("consumer-%d", i), 100)
		clk.Advance(time.Second)
	}
	clk.Advance(2 * time.Hour)
	m.RecordProduce("alice", "latest", 100)
	if n := len(m.clients); n != 1 {
		t.Fatalf("%d cached clients after churn, want 1", n)
	}
}
