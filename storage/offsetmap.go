package storage

import (
	"hash/maphash"
	"math/bits"
)

// offsetMap maps record keys to the latest offset seen for them during one
// cleaning pass. Keys are stored as 128-bit hashes (two independently
// seeded 64-bit hashes), never as bytes, so the memory it takes depends on
// the number of distinct keys only: 24 bytes a slot. A collision of both
// halves would make the cleaner drop a record of another key; at 2^-128 per
// pair that is far below the odds of undetected disk corruption, the same
// trade Kafka's 16-byte MD5 map makes.
//
// It is an open-addressing table with linear probing that starts small and
// doubles up to maxSlots. Growth holds the old and the new table at once,
// so maxSlots is chosen with that peak inside the memory bound.
type offsetMap struct {
	seed1, seed2 maphash.Seed
	slots        []mapSlot
	count        int
	maxSlots     int
}

type mapSlot struct {
	h1, h2 uint64
	off    int64 // offset + 1; 0 marks an empty slot
}

const (
	mapSlotBytes    = 24
	minMapSlots     = 16
	initialMapSlots = 1024
	// mapMaxLoad is the fill (in percent) at which a table of maxSlots is
	// full; smaller tables double at mapGrowLoad.
	mapMaxLoad  = 90
	mapGrowLoad = 75
	// DefaultMaxOffsetMapBytes is the offset map's memory bound when
	// CompactOptions.MaxOffsetMapBytes is zero (Kafka's
	// log.cleaner.dedupe.buffer.size is 128 MiB, shared by its threads).
	DefaultMaxOffsetMapBytes = 128 << 20
)

// newOffsetMap makes a map whose tables never take more than maxBytes
// together (including the moment of growth, when the half-size table and
// the full one coexist: 1.5 x the final table).
func newOffsetMap(maxBytes int64) *offsetMap {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxOffsetMapBytes
	}
	n := maxBytes * 2 / 3 / mapSlotBytes
	maxSlots := minMapSlots
	if n >= minMapSlots {
		maxSlots = 1 << (bits.Len64(uint64(n)) - 1) // power of two <= n
	}
	m := &offsetMap{seed1: maphash.MakeSeed(), seed2: maphash.MakeSeed(), maxSlots: maxSlots}
	m.slots = make([]mapSlot, min(initialMapSlots, maxSlots))
	return m
}

// capacity is how many distinct keys the map takes before it is full.
func (m *offsetMap) capacity() int { return m.maxSlots * mapMaxLoad / 100 }

// room reports whether n more distinct keys certainly fit.
func (m *offsetMap) room(n int) bool { return m.count+n <= m.capacity() }

func (m *offsetMap) reset() {
	clear(m.slots)
	m.count = 0
}

// put records off as the latest offset of key. Callers check room first;
// put on a full map panics (a bug, not an input error).
func (m *offsetMap) put(key []byte, off int64) {
	h1, h2 := maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
	if len(m.slots) < m.maxSlots && (m.count+1)*100 > len(m.slots)*mapGrowLoad {
		m.grow()
	}
	if m.insert(h1, h2, off) {
		m.count++
		if m.count > m.capacity() {
			panic("storage: offset map overfilled")
		}
	}
}

// insert sets the slot of (h1, h2) and reports whether it was new.
func (m *offsetMap) insert(h1, h2 uint64, off int64) bool {
	mask := uint64(len(m.slots) - 1)
	for i := h1 & mask; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.off == 0 {
			*s = mapSlot{h1: h1, h2: h2, off: off + 1}
			return true
		}
		if s.h1 == h1 && s.h2 == h2 {
			s.off = off + 1
			return false
		}
	}
}

func (m *offsetMap) grow() {
	old := m.slots
	m.slots = make([]mapSlot, 2*len(old))
	for _, s := range old {
		if s.off != 0 {
			m.insert(s.h1, s.h2, s.off-1)
		}
	}
}

// get returns the latest offset recorded for key, or -1.
func (m *offsetMap) get(key []byte) int64 {
	h1, h2 := maphash.Bytes(m.seed1, key), maphash.Bytes(m.seed2, key)
	mask := uint64(len(m.slots) - 1)
	for i := h1 & mask; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.off == 0 {
			return -1
		}
		if s.h1 == h1 && s.h2 == h2 {
			return s.off - 1
		}
	}
}
