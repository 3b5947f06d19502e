package quota

import (
	"math"
	"testing"
	"time"

	"github.com/strata-broker/strata/metadata"
)

// refRate is a deliberately plain model of Kafka's quota measurement
// (a growing list of samples, milliseconds, the formulas written out as in
// KIP-13/KIP-124), independent of the sensor's ring buffer.
type refRate struct {
	samples, windowMs int64
	list              []refSample
	cur               int
}

type refSample struct {
	start, last int64
	value       float64
}

func (r *refRate) record(v float64, now int64) {
	if len(r.list) == 0 {
		r.list = append(r.list, refSample{start: now, last: now})
	}
	if now-r.list[r.cur].start >= r.windowMs {
		r.cur = (r.cur + 1) % int(r.samples+1)
		if r.cur >= len(r.list) {
			r.list = append(r.list, refSample{start: now, last: now})
		} else {
			r.list[r.cur] = refSample{start: now, last: now}
		}
	}
	r.list[r.cur].value += v
	r.list[r.cur].last = now
}

// throttleMs records nothing; it answers for a quota of bound at now.
func (r *refRate) throttleMs(bound float64, now, capMs int64) int64 {
	for i := range r.list {
		if now-r.list[i].last >= r.samples*r.windowMs {
			r.list[i] = refSample{start: now, last: now}
		}
	}
	var sum float64
	oldest := r.list[0].start
	for _, s := range r.list {
		sum += s.value
		oldest = min(oldest, s.start)
	}
	elapsed := now - oldest
	if full := elapsed / r.windowMs; full < r.samples-1 {
		elapsed += (r.samples - 1 - full) * r.windowMs
	}
	rate := sum / (float64(elapsed) / 1000)
	if rate <= bound {
		return 0
	}
	t := math.Round((rate - bound) / bound * float64(elapsed))
	if t > float64(capMs) {
		return capMs
	}
	return int64(t)
}

// The manager's throttle times equal the reference model's for any
// sequence of records.
func FuzzThrottleMatchesReference(f *testing.F) {
	f.Add(uint16(1000), []byte{0, 50, 0, 20, 10, 0, 255, 1, 0})
	f.Add(uint16(1), []byte{1, 1, 1, 2, 2, 2, 3, 3, 3, 250, 250, 250})
	f.Fuzz(func(t *testing.T, quota uint16, ops []byte) {
		m, clk := newTestManager(t)
		bound := float64(quota)
		m.Update(quotas{ce("u", ""): {ProducerByteRate: bound}})
		ref := &refRate{samples: 11, windowMs: 1000}
		var now int64
		for i := 0; i+2 < len(ops) && i < 3*200; i += 3 {
			now += int64(ops[i]) * 37 // steps up to ~9.4 s, off the window grid
			v := int64(ops[i+1]) * int64(ops[i+2]) * 17
			clk.Set(time.Duration(now) * time.Millisecond)
			got := m.RecordProduce("u", "c", v)
			ref.record(float64(v), now)
			want := time.Duration(ref.throttleMs(bound, now, 11000)) * time.Millisecond
			// The two sum and divide in a different order, so a value
			// that lands on a .5 ms boundary may round either way.
			if d := got - want; d > time.Millisecond || d < -time.Millisecond {
				t.Fatalf("op %d (t=%dms, %d B, quota %v): throttle %v, reference %v", i/3, now, v, bound, got, want)
			}
		}
	})
}

// For any set of entities, the bound a client resolves to is the bound of
// its sensor's tags: Update re-bounds sensors by tags alone, and must not
// give a sensor a quota different from the one its clients resolved to.
func FuzzResolveAgreesWithLimit(f *testing.F) {
	f.Add(uint16(0xffff))
	f.Add(uint16(0x0001))
	f.Add(uint16(0x1234))
	users := []string{"alice", "<default>", ""}
	clients := []string{"c1", "<default>", ""}
	var universe []metadata.QuotaEntity
	for _, u := range users {
		for _, c := range clients {
			if u != "" || c != "" {
				universe = append(universe, ce(u, c))
			}
		}
	}
	universe = append(universe, ce("bob", "c1"), ce("alice", "c2"), ce("", "c2"))
	f.Fuzz(func(t *testing.T, mask uint16) {
		q := quotas{}
		for i, e := range universe {
			if mask&(1<<i) != 0 {
				q[e] = map[string]float64{ProducerByteRate: float64(i + 1)}
			}
		}
		qs := buildQuotaSet(q)
		for _, u := range []string{"alice", "bob"} {
			for _, c := range []string{"c1", "c2", ""} {
				tg, b, ok := resolve(qs.client[kindProduce], u, c)
				if !ok {
					continue
				}
				if lb, lok := limit(qs.client[kindProduce], tg); !lok || lb != b {
					t.Fatalf("mask %#x (%s, %q): resolve %+v bound %v, limit %v %v", mask, u, c, tg, b, lb, lok)
				}
			}
		}
	})
}
