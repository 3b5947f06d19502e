package quota

import (
	"maps"
	"math"
	"net/netip"

	"github.com/strata-broker/strata/metadata"
)

// quotaSet is one immutable snapshot of the quotas, split by key. A nil
// client map means no entity has that key, which is what lets the hot path
// return without a lookup.
type quotaSet struct {
	client       [numKinds]map[metadata.QuotaEntity]float64 // user/client-id entities, names canonical
	ip           map[ipKey]float64                          // exact IPs
	ipDefault    float64
	hasIPDefault bool
}

// ipKey identifies an IP entity: the parsed address (so "::ffff:10.0.0.1"
// and "10.0.0.1" are one entity, as Java's InetAddress makes them in
// Kafka), or the raw text when it is not an IP literal.
type ipKey struct {
	addr netip.Addr
	raw  string
}

func parseIP(s string) ipKey {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return ipKey{raw: s}
	}
	return ipKey{addr: a.Unmap()}
}

// canon makes equal entity components compare equal as map keys: a
// <default> or absent component carries no name.
func canon(n metadata.QuotaName) metadata.QuotaName {
	switch {
	case !n.Set:
		return metadata.QuotaName{}
	case n.Default:
		return metadata.QuotaName{Set: true, Default: true}
	default:
		return metadata.QuotaName{Set: true, Name: n.Name}
	}
}

var (
	none = metadata.QuotaName{}
	dflt = metadata.QuotaName{Set: true, Default: true}
)

func named(s string) metadata.QuotaName { return metadata.QuotaName{Set: true, Name: s} }

func entity(u, c metadata.QuotaName) metadata.QuotaEntity {
	return metadata.QuotaEntity{User: u, ClientID: c}
}

func buildQuotaSet(q map[metadata.QuotaEntity]map[string]float64) *quotaSet {
	qs := &quotaSet{}
	for e, vals := range q {
		switch {
		case e.IP.Set && !e.User.Set && !e.ClientID.Set:
			v, ok := quotaValue(vals, ConnectionCreationRate)
			if !ok {
				continue
			}
			if e.IP.Default {
				qs.ipDefault, qs.hasIPDefault = v, true
				continue
			}
			if qs.ip == nil {
				qs.ip = map[ipKey]float64{}
			}
			qs.ip[parseIP(e.IP.Name)] = v
		case !e.IP.Set && (e.User.Set || e.ClientID.Set):
			ce := entity(canon(e.User), canon(e.ClientID))
			for k := range numKinds {
				v, ok := quotaValue(vals, kindKey[k])
				if !ok {
					continue
				}
				if qs.client[k] == nil {
					qs.client[k] = map[metadata.QuotaEntity]float64{}
				}
				qs.client[k][ce] = v
			}
		}
		// Anything else (IP mixed with user or client-id) is not a Kafka
		// entity; the metadata layer rejects it, and it limits nobody here.
	}
	return qs
}

// quotaValue reads one key. NaN cannot be compared with a rate and is
// ignored; a negative quota is treated as 0 (nothing allowed).
func quotaValue(vals map[string]float64, key string) (float64, bool) {
	v, ok := vals[key]
	if !ok || math.IsNaN(v) {
		return 0, false
	}
	return max(v, 0), true
}

func (q *quotaSet) hasIP() bool { return q.hasIPDefault || len(q.ip) > 0 }

func (q *quotaSet) ipLimit(k ipKey) (float64, bool) {
	if v, ok := q.ip[k]; ok {
		return v, true
	}
	return q.ipDefault, q.hasIPDefault
}

func (q *quotaSet) equal(o *quotaSet) bool {
	if q.hasIPDefault != o.hasIPDefault || q.ipDefault != o.ipDefault || !maps.Equal(q.ip, o.ip) {
		return false
	}
	for k := range numKinds {
		if (q.client[k] == nil) != (o.client[k] == nil) || !maps.Equal(q.client[k], o.client[k]) {
			return false
		}
	}
	return true
}

// resolve finds the entity whose quota of one key applies to (user,
// clientID), most specific first, as Kafka's default quota callback does:
//
//	user + client-id, user + <default> client-id, user,
//	<default> user + client-id, <default> user + <default> client-id, <default> user,
//	client-id, <default> client-id
//
// It returns the sensor tags (whose usage the client shares) and the bound.
func resolve(q map[metadata.QuotaEntity]float64, user, clientID string) (tags, float64, bool) {
	if q == nil {
		return tags{}, 0, false
	}
	u, c := named(user), named(clientID)
	both := tags{user: user, client: clientID, hasUser: true, hasClient: true}
	userOnly := tags{user: user, hasUser: true}
	clientOnly := tags{client: clientID, hasClient: true}
	for _, lv := range [...]struct {
		e metadata.QuotaEntity
		t tags
	}{
		{entity(u, c), both},
		{entity(u, dflt), both},
		{entity(u, none), userOnly},
		{entity(dflt, c), both},
		{entity(dflt, dflt), both},
		{entity(dflt, none), userOnly},
		{entity(none, c), clientOnly},
		{entity(none, dflt), clientOnly},
	} {
		if v, ok := q[lv.e]; ok {
			return lv.t, v, true
		}
	}
	return tags{}, 0, false
}

// limit is the bound of the sensor with tags t: the most specific entity
// of the shape the tags came from. Used when quotas change, to re-bound a
// sensor without knowing which clients feed it; it agrees with resolve for
// every client resolving to t.
func limit(q map[metadata.QuotaEntity]float64, t tags) (float64, bool) {
	var chain []metadata.QuotaEntity
	u, c := named(t.user), named(t.client)
	switch {
	case t.hasUser && t.hasClient:
		chain = []metadata.QuotaEntity{entity(u, c), entity(u, dflt), entity(dflt, c), entity(dflt, dflt)}
	case t.hasUser:
		chain = []metadata.QuotaEntity{entity(u, none), entity(dflt, none)}
	case t.hasClient:
		chain = []metadata.QuotaEntity{entity(none, c), entity(none, dflt)}
	}
	for _, e := range chain {
		if v, ok := q[e]; ok {
			return v, true
		}
	}
	return 0, false
}
