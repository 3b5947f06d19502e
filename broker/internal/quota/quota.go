package quota

import (
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-broker/strata/metadata"
)

// Quota keys, with Kafka's names (DescribeClientQuotas, AlterClientQuotas).
// Other keys in the metadata (controller_mutation_rate) are ignored here.
const (
	ProducerByteRate       = "producer_byte_rate"       // bytes/s of produce requests
	ConsumerByteRate       = "consumer_byte_rate"       // bytes/s of fetch responses
	RequestPercentage      = "request_percentage"       // % of one thread's time per second
	ConnectionCreationRate = "connection_creation_rate" // new connections/s per IP
)

// Kafka's defaults: quota.window.num and quota.window.size.seconds.
const (
	DefaultSamples = 11
	DefaultWindow  = time.Second
)

const (
	// idleExpiry: a sensor or cached client resolution unused this long is
	// dropped, so client-id churn cannot grow memory without bound (Kafka
	// expires quota sensors after an hour of inactivity too).
	idleExpiry = time.Hour
	// sweepEvery bounds how often a request pays for the idle sweep.
	sweepEvery = time.Minute
	// touchEvery: a cached client's last-use time is rewritten at most this
	// often, so connections of one busy client do not all write the same
	// cache line on every request.
	touchEvery = time.Second
)

// Config configures a Manager. Zero values take Kafka's defaults.
type Config struct {
	Samples int              // windows the rate is measured over (quota.window.num); raised to 2 if lower
	Window  time.Duration    // width of one window (quota.window.size.seconds)
	Now     func() time.Time // nil = time.Now
}

// kind is a client quota enforced per (user, client-id).
type kind uint8

const (
	kindProduce kind = iota
	kindFetch
	kindRequest
	numKinds
)

var kindKey = [numKinds]string{ProducerByteRate, ConsumerByteRate, RequestPercentage}

// tags identify a sensor within one kind, as Kafka's quota metric tags do:
// the user and/or client-id the usage is counted for. An entity with a
// <default> component still counts per actual name (every user under a
// <default> user quota has a rate of its own). has* separate "not part of
// the entity" from an empty client-id.
type tags struct {
	user, client       string
	hasUser, hasClient bool
}

type sensorKey struct {
	kind kind
	tags
}

type clientKey struct{ user, client string }

// client caches what one (user, client-id) resolved to under the current
// quotas: one sensor per kind, nil where no quota applies.
type client struct {
	sensors  [numKinds]*sensor
	lastUsed atomic.Int64
}

// Manager tracks client usage against the quotas of the last Update. All
// methods are safe for concurrent use.
type Manager struct {
	now  func() time.Time
	base time.Time // clock readings are nanoseconds since base (monotonic with time.Now)
	win  window

	conf atomic.Pointer[quotaSet] // read lock-free on the fast path; replaced under mu

	// mu guards the three maps. Lock order: mu, then a sensor's mu.
	mu      sync.RWMutex
	clients map[clientKey]*client
	sensors map[sensorKey]*sensor
	ips     map[ipKey]*sensor

	nextSweep atomic.Int64
	sweepGen  uint64 // guarded by mu
}

// New returns a Manager with no quotas.
func New(cfg Config) *Manager {
	if cfg.Samples <= 0 {
		cfg.Samples = DefaultSamples
	}
	// One sample would measure a burst over the few milliseconds since the
	// window opened; Kafka's span always includes samples-1 whole windows.
	cfg.Samples = max(cfg.Samples, 2)
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m := &Manager{
		now:     cfg.Now,
		win:     window{samples: cfg.Samples, width: int64(cfg.Window)},
		clients: map[clientKey]*client{},
		sensors: map[sensorKey]*sensor{},
		ips:     map[ipKey]*sensor{},
	}
	m.base = m.now()
	m.conf.Store(&quotaSet{})
	m.nextSweep.Store(int64(sweepEvery))
	return m
}

func (m *Manager) clock() int64 { return int64(m.now().Sub(m.base)) }

// Update replaces every quota with q (the metadata's ClientQuotas). Sensors
// keep their history when their entity still has a quota (only the bound
// changes, as in Kafka); a client whose quota now resolves to another
// entity starts counting in that entity's sensor, fresh if it is new.
// Sensors left without a quota are dropped. q is not retained.
func (m *Manager) Update(q map[metadata.QuotaEntity]map[string]float64) {
	qs := buildQuotaSet(q)
	m.mu.Lock()
	defer m.mu.Unlock()
	if qs.equal(m.conf.Load()) {
		// Update runs on every security change (ACLs, credentials too); keep
		// the resolution cache when the quotas did not move.
		return
	}
	m.conf.Store(qs)
	m.clients = map[clientKey]*client{}
	for k, s := range m.sensors {
		b, ok := limit(qs.client[k.kind], k.tags)
		if !ok {
			delete(m.sensors, k)
			continue
		}
		s.mu.Lock()
		s.bound = b
		s.mu.Unlock()
	}
	for k, s := range m.ips {
		b, ok := qs.ipLimit(k)
		if !ok {
			delete(m.ips, k)
			continue
		}
		s.mu.Lock()
		s.bound = b
		s.mu.Unlock()
	}
}

// The user argument of the Record methods is the principal's name without
// its "User:" type ("alice" for "User:alice", "ANONYMOUS" when
// unauthenticated); clientID is the request header's client id ("" when
// null). Each returns how long the client must be throttled, in whole
// milliseconds, 0 within quota.

// RecordProduce records bytes of a produce request against producer_byte_rate.
// The throttle is capped at the measured span (Samples*Window).
func (m *Manager) RecordProduce(user, clientID string, bytes int64) time.Duration {
	return m.record(kindProduce, user, clientID, float64(bytes))
}

// RecordFetch records bytes of a fetch response against consumer_byte_rate.
// The throttle is capped at the measured span (Samples*Window).
func (m *Manager) RecordFetch(user, clientID string, bytes int64) time.Duration {
	return m.record(kindFetch, user, clientID, float64(bytes))
}

// UnrecordFetch takes back bytes recorded by RecordFetch at the same
// moment: Kafka answers a throttled fetch with an empty response and does
// not charge the client for data it never got.
func (m *Manager) UnrecordFetch(user, clientID string, bytes int64) {
	q := m.conf.Load()
	if q.client[kindFetch] == nil {
		return
	}
	if s, now := m.sensorFor(kindFetch, user, clientID); s != nil {
		s.mu.Lock()
		s.add(m.win, -float64(bytes), now)
		s.mu.Unlock()
	}
}

// MaxFetchBytes is the largest fetch response the client's consumer quota
// can absorb without certain throttling: the quota times samples-1 windows,
// Kafka's cap on a quota'd fetch. math.MaxInt64 when no quota applies.
func (m *Manager) MaxFetchBytes(user, clientID string) int64 {
	q := m.conf.Load()
	if q.client[kindFetch] == nil {
		return math.MaxInt64
	}
	s, _ := m.sensorFor(kindFetch, user, clientID)
	if s == nil {
		return math.MaxInt64
	}
	s.mu.Lock()
	b := s.bound
	s.mu.Unlock()
	v := b * float64(m.win.samples-1) * float64(m.win.width) / float64(time.Second)
	if !(v < math.MaxInt64) {
		return math.MaxInt64
	}
	return int64(v)
}

// RecordRequestTime records d of request-handling time against
// request_percentage: d is charged as d/1s*100 percent-seconds and the
// rate compared with the percentage. As in Kafka the throttle is capped at
// one Window (request time is measured after the fact and a long request
// should not lock a client out for the whole span).
func (m *Manager) RecordRequestTime(user, clientID string, d time.Duration) time.Duration {
	return m.record(kindRequest, user, clientID, float64(d)*100/float64(time.Second))
}

func (m *Manager) record(k kind, user, clientID string, v float64) time.Duration {
	q := m.conf.Load()
	if q.client[k] == nil {
		return 0 // no quota of this kind anywhere: touch nothing
	}
	s, now := m.sensorFor(k, user, clientID)
	if s == nil {
		return 0
	}
	limit := time.Duration(m.win.span())
	if k == kindRequest {
		limit = time.Duration(m.win.width)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(m.win, v, now)
	return s.throttle(m.win, now, limit)
}

// sensorFor returns the sensor of kind k that (user, clientID) counts in
// and the clock reading, or nil when no quota of kind k applies to it. The
// resolution is cached per (user, clientID) until the quotas change.
func (m *Manager) sensorFor(k kind, user, clientID string) (*sensor, int64) {
	m.mu.RLock()
	c := m.clients[clientKey{user, clientID}]
	m.mu.RUnlock()
	if c == nil {
		now := m.clock()
		m.maybeSweep(now)
		c = m.addClient(user, clientID, now)
	}
	s := c.sensors[k]
	if s == nil {
		// No clock read: it would cost more than the rest of this call.
		// The client's last use is therefore not refreshed, so a client
		// that only does what no quota covers is dropped by the idle sweep
		// once an hour and resolved again, one write lock later.
		return nil, 0
	}
	now := m.clock()
	// Touch before sweeping, or a client coming back after an hour would
	// be swept from under this very call.
	if c.lastUsed.Load() < now-int64(touchEvery) {
		c.lastUsed.Store(now)
	}
	m.maybeSweep(now)
	return s, now
}

func (m *Manager) addClient(user, clientID string, now int64) *client {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := clientKey{user, clientID}
	if c := m.clients[key]; c != nil {
		return c
	}
	// The names become map keys that outlive the request; the caller's
	// strings may alias a reused request buffer.
	key = clientKey{strings.Clone(user), strings.Clone(clientID)}
	q := m.conf.Load()
	c := &client{}
	c.lastUsed.Store(now)
	for k := range numKinds {
		t, b, ok := resolve(q.client[k], key.user, key.client)
		if !ok {
			continue
		}
		sk := sensorKey{k, t}
		s := m.sensors[sk]
		if s == nil {
			s = newSensor(m.win, b, now)
			m.sensors[sk] = s
		}
		c.sensors[k] = s
	}
	m.clients[key] = c
	return c
}

// AllowConnection records a new connection from ip (an address without
// port) against connection_creation_rate: the quota of that exact IP, else
// the <default> IP quota. It reports false when accepting would put the
// IP over its quota; a refused connection is not counted (as in Kafka,
// which un-records it), so a client retrying in a loop is not locked out
// for longer than its own accepted rate warrants.
func (m *Manager) AllowConnection(ip string) bool {
	q := m.conf.Load()
	if !q.hasIP() {
		return true
	}
	key := parseIP(ip)
	if _, ok := q.ipLimit(key); !ok {
		return true
	}
	now := m.clock()
	m.maybeSweep(now)
	s := m.ipSensor(key, now)
	if s == nil {
		return true // quotas changed under us and no longer cover ip
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(m.win, 1, now)
	if s.throttle(m.win, now, time.Duration(m.win.width)) > 0 {
		s.add(m.win, -1, now)
		return false
	}
	return true
}

func (m *Manager) ipSensor(key ipKey, now int64) *sensor {
	m.mu.RLock()
	s := m.ips[key]
	m.mu.RUnlock()
	if s != nil {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.ips[key]; s != nil {
		return s
	}
	b, ok := m.conf.Load().ipLimit(key)
	if !ok {
		return nil
	}
	key.raw = strings.Clone(key.raw)
	s = newSensor(m.win, b, now)
	m.ips[key] = s
	return s
}

// maybeSweep runs the idle sweep when it is due; one caller wins the race.
func (m *Manager) maybeSweep(now int64) {
	next := m.nextSweep.Load()
	if now < next || !m.nextSweep.CompareAndSwap(next, now+int64(sweepEvery)) {
		return
	}
	m.sweep(now)
}

// sweep drops cached clients idle for idleExpiry, then sensors idle as
// long that no remaining client points at. A sensor a cached client still
// holds is kept however idle (a client producing but never fetching holds
// an unused fetch sensor): dropping it would leave that client counting in
// an orphan while other clients of the entity got a new sensor.
func (m *Manager) sweep(now int64) {
	cutoff := now - int64(idleExpiry)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepGen++
	for k, c := range m.clients {
		if c.lastUsed.Load() <= cutoff {
			delete(m.clients, k)
			continue
		}
		for _, s := range c.sensors {
			if s != nil {
				s.held = m.sweepGen
			}
		}
	}
	for k, s := range m.sensors {
		if s.held != m.sweepGen && s.lastUsed.Load() <= cutoff {
			delete(m.sensors, k)
		}
	}
	for k, s := range m.ips {
		if s.lastUsed.Load() <= cutoff {
			delete(m.ips, k)
		}
	}
}
