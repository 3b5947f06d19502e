package broker

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Incremental fetch sessions (KIP-227). A session remembers, per
// partition, what the client asked for and what it was last told, so an
// incremental fetch names only partitions that changed and the response
// carries only partitions with news (records, a new high watermark or log
// start offset, or an error).
//
// Lock order: fetchSessions.mu before fetchSession.mu; a fetch holds its
// session's mu only while reading or updating the session's maps, never
// while waiting in a long poll.

// sessKey identifies a partition in a session. Sessions created by
// v13+ requests address topics by id, older ones by name; one session
// never mixes the two.
type sessKey struct {
	id        uuid.UUID
	topic     string
	partition int32
}

type sessPart struct {
	key          sessKey
	fetchOffset  int64
	maxBytes     int32
	leaderEpoch  int32
	lastFetchedE int32
	// what the client was last told; -1 before the first answer
	sentHW, sentLSO, sentLogStart int64
}

type fetchSession struct {
	id       int32
	mu       sync.Mutex // guards everything below
	epoch    int32      // the epoch the next incremental request must carry
	parts    map[sessKey]*sessPart
	order    []sessKey // stable response order
	lastUsed time.Time
}

type fetchSessions struct {
	mu       sync.Mutex // guards sessions
	max      int
	sessions map[int32]*fetchSession
}

func newFetchSessions(max int) *fetchSessions {
	return &fetchSessions{max: max, sessions: make(map[int32]*fetchSession)}
}

// idleEvictAfter is how long a session must be unused before a new one
// may take its slot; younger sessions are kept and the new client simply
// gets no session (it works sessionless).
const idleEvictAfter = 30 * time.Second

// create makes a new session, or returns nil when the cache is full of
// busy sessions.
func (fs *fetchSessions) create(now time.Time) *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.max <= 0 {
		return nil
	}
	if len(fs.sessions) >= fs.max {
		var lru *fetchSession
		for _, s := range fs.sessions {
			if lru == nil || s.lastUsed.Before(lru.lastUsed) {
				lru = s
			}
		}
		if lru == nil || now.Sub(lru.lastUsed) < idleEvictAfter {
			return nil
		}
		delete(fs.sessions, lru.id)
	}
	var id int32
	for id == 0 || fs.sessions[id] != nil {
		id = rand.Int32N(1<<31-1) + 1
	}
	s := &fetchSession{id: id, epoch: 1, parts: make(map[sessKey]*sessPart), lastUsed: now}
	fs.sessions[id] = s
	return s
}

func (fs *fetchSessions) get(id int32) *fetchSession {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.sessions[id]
}

func (fs *fetchSessions) remove(id int32) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	delete(fs.sessions, id)
}

func (fs *fetchSessions) len() int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return len(fs.sessions)
}

// upsert adds or updates a partition from a request; s.mu must be held.
func (s *fetchSession) upsert(p sessPart) {
	if old, ok := s.parts[p.key]; ok {
		old.fetchOffset, old.maxBytes, old.leaderEpoch, old.lastFetchedE = p.fetchOffset, p.maxBytes, p.leaderEpoch, p.lastFetchedE
		return
	}
	p.sentHW, p.sentLSO, p.sentLogStart = -1, -1, -1
	np := p
	s.parts[p.key] = &np
	s.order = append(s.order, p.key)
}

// forget removes a partition; s.mu must be held.
func (s *fetchSession) forget(k sessKey) {
	if _, ok := s.parts[k]; !ok {
		return
	}
	delete(s.parts, k)
	for i, o := range s.order {
		if o == k {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
}

// nextSessionEpoch wraps like Kafka's: after MaxInt32 comes 1 (0 and -1
// mean "new" and "close").
func nextSessionEpoch(e int32) int32 {
	if e == 1<<31-1 {
		return 1
	}
	return e + 1
}
