package broker

// DescribeClientQuotas v0-v1 and AlterClientQuotas v0-v1 (KIP-546).
//
// Quotas live in the metadata quorum per entity: user, client-id, user +
// client-id, or ip alone, each component a name or the default (null on
// the wire). User entities take producer_byte_rate and consumer_byte_rate
// (whole bytes/s), request_percentage and controller_mutation_rate; ip
// entities take connection_creation_rate (a whole number). Values must be
// greater than 0; anything else is INVALID_REQUEST with the reason.
//
// As in Kafka (KRaft): DESCRIBE_CONFIGS on CLUSTER to describe (else a
// top-level CLUSTER_AUTHORIZATION_FAILED), ALTER_CONFIGS on CLUSTER to
// alter (else every entry gets it). Describe filter components match a
// type exactly (match type 0, name), its default (1) or any name
// including the default (2); without strict, entities with more
// components also match. Entity types other than user, client-id and ip
// in a describe filter are UNSUPPORTED_VERSION, as Kafka answers. All
// accepted alterations go to the metadata quorum in one command;
// validate_only checks without committing.
//
// Differences from Apache Kafka: an ip entity must be an IP address
// (Kafka also accepts a resolvable host name, which its connection limiter
// could never match by address); it is stored in canonical form, so
// "::0001" and "::1" are the same entity, and so are "::ffff:10.0.0.1"
// and "10.0.0.1". An entity named twice in one
// request gets INVALID_REQUEST in each of its entries and is not changed
// (Kafka applies the first and reports the error). controller_mutation_rate
// is stored but not enforced (Strata has no controller mutation quota).
// NaN and infinite values are refused.

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() {
	register(48, 0, 1, handleDescribeClientQuotas)
	register(49, 0, 1, handleAlterClientQuotas)
}

// Kafka's quota entity types.
const (
	quotaTypeUser     = "user"
	quotaTypeClientID = "client-id"
	quotaTypeIP       = "ip"
)

// quotaKeyKind is how a quota key's value must look.
type quotaKeyKind int

const (
	quotaDouble quotaKeyKind = iota
	quotaLong
	quotaInt
)

var (
	userQuotaKeys = map[string]quotaKeyKind{
		"producer_byte_rate":       quotaLong,
		"consumer_byte_rate":       quotaLong,
		"request_percentage":       quotaDouble,
		"controller_mutation_rate": quotaDouble,
	}
	ipQuotaKeys = map[string]quotaKeyKind{
		"connection_creation_rate": quotaInt,
	}
)

// quotaName reads one entity component from the wire: null is the
// default entity.
func quotaName(name *string) metadata.QuotaName {
	if name == nil {
		return metadata.QuotaName{Set: true, Default: true}
	}
	return metadata.QuotaName{Set: true, Name: *name}
}

// canonicalIP makes an ip entity name canonical, so one address is one
// entity however it was spelled; ok=false if it is not an IP address.
func canonicalIP(n metadata.QuotaName) (metadata.QuotaName, bool) {
	if n.Default {
		return n, true
	}
	a, err := netip.ParseAddr(n.Name)
	if err != nil || a.Zone() != "" {
		return n, false
	}
	// Unmapped: Go reports an IPv4 client on a dual-stack socket as
	// "10.0.0.1", never "::ffff:10.0.0.1", and that is what quotas match.
	n.Name = a.Unmap().String()
	return n, true
}

// parseQuotaEntity validates an AlterClientQuotas entity; msg says why
// it is refused (INVALID_REQUEST), empty when it is fine.
func parseQuotaEntity(comps []kmsg.AlterClientQuotasRequestEntryEntity) (e metadata.QuotaEntity, keys map[string]quotaKeyKind, msg string) {
	if len(comps) == 0 {
		return e, nil, "the quota entity is empty"
	}
	for _, c := range comps {
		var slot *metadata.QuotaName
		switch c.Type {
		case quotaTypeUser:
			slot = &e.User
		case quotaTypeClientID:
			slot = &e.ClientID
		case quotaTypeIP:
			slot = &e.IP
		default:
			return e, nil, fmt.Sprintf("unknown quota entity type %q (want user, client-id or ip)", c.Type)
		}
		if slot.Set {
			return e, nil, fmt.Sprintf("entity type %s appears more than once", c.Type)
		}
		if c.Name != nil && *c.Name == "" {
			return e, nil, fmt.Sprintf("an empty %s name is not allowed (null is the default entity)", c.Type)
		}
		*slot = quotaName(c.Name)
	}
	if e.IP.Set {
		if e.User.Set || e.ClientID.Set {
			return e, nil, "an ip entity cannot be combined with user or client-id"
		}
		ip, ok := canonicalIP(e.IP)
		if !ok {
			return e, nil, fmt.Sprintf("%q is not an IP address", e.IP.Name)
		}
		e.IP = ip
		return e, ipQuotaKeys, ""
	}
	return e, userQuotaKeys, ""
}

// checkQuotaValue validates one quota to set; "" when fine.
func checkQuotaValue(keys map[string]quotaKeyKind, key string, v float64) string {
	kind, ok := keys[key]
	if !ok {
		valid := make([]string, 0, len(keys))
		for k := range keys {
			valid = append(valid, k)
		}
		slices.Sort(valid)
		return fmt.Sprintf("invalid quota key %q for this entity (valid: %s)", key, strings.Join(valid, ", "))
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("quota %s must be a finite number", key)
	}
	if v <= 0 {
		return fmt.Sprintf("quota %s must be greater than 0, got %v", key, v)
	}
	var limit float64
	switch kind {
	case quotaDouble:
		return ""
	case quotaLong:
		limit = math.MaxInt64
	case quotaInt:
		limit = math.MaxInt32
	}
	if v > limit {
		return fmt.Sprintf("quota %s is too large: %v", key, v)
	}
	if math.Abs(math.Mod(v, 1)) > 1e-6 {
		return fmt.Sprintf("quota %s must be a whole number, got %v", key, v)
	}
	return ""
}

// quotaEntityString names an entity for messages and the audit log,
// "user=alice,client-id=<default>".
func quotaEntityString(e metadata.QuotaEntity) string {
	var parts []string
	add := func(typ string, n metadata.QuotaName) {
		switch {
		case !n.Set:
		case n.Default:
			parts = append(parts, typ+"=<default>")
		default:
			parts = append(parts, typ+"="+n.Name)
		}
	}
	add(quotaTypeUser, e.User)
	add(quotaTypeClientID, e.ClientID)
	add(quotaTypeIP, e.IP)
	return strings.Join(parts, ",")
}

func handleAlterClientQuotas(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AlterClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	resp.Entries = make([]kmsg.AlterClientQuotasResponseEntry, len(req.Entries))
	for i, re := range req.Entries {
		for _, c := range re.Entity {
			resp.Entries[i].Entity = append(resp.Entries[i].Entity, kmsg.AlterClientQuotasResponseEntryEntity{Type: c.Type, Name: c.Name})
		}
	}
	setErr := func(i int, code int16, msg string) {
		resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = code, kmsg.StringPtr(msg)
	}

	entities := make([]metadata.QuotaEntity, len(req.Entries))
	alts := make([]*metadata.QuotaAlteration, len(req.Entries))
	if !s.allowCluster(r, kmsg.ACLOperationAlterConfigs) {
		for i := range req.Entries {
			setErr(i, kerr.ClusterAuthorizationFailed.Code, clusterDenied)
		}
	} else {
		valid := make([]bool, len(req.Entries))
		count := map[metadata.QuotaEntity]int{}
		keysOf := make([]map[string]quotaKeyKind, len(req.Entries))
		for i, re := range req.Entries {
			e, keys, msg := parseQuotaEntity(re.Entity)
			if msg != "" {
				setErr(i, kerr.InvalidRequest.Code, msg)
				continue
			}
			entities[i], keysOf[i], valid[i] = e, keys, true
			count[e]++
		}
		for i, re := range req.Entries {
			if !valid[i] {
				continue
			}
			if count[entities[i]] > 1 {
				setErr(i, kerr.InvalidRequest.Code, fmt.Sprintf("entity %s is altered more than once in the request", quotaEntityString(entities[i])))
				continue
			}
			alt, msg := quotaAlteration(entities[i], keysOf[i], re.Ops)
			if msg != "" {
				setErr(i, kerr.InvalidRequest.Code, msg)
				continue
			}
			alts[i] = alt
		}
		var batch []metadata.QuotaAlteration
		for _, a := range alts {
			if a != nil && (len(a.Set) > 0 || len(a.Remove) > 0) {
				batch = append(batch, *a)
			}
		}
		if len(batch) > 0 && !req.ValidateOnly {
			if err := s.meta.AlterClientQuotas(ctx, batch); err != nil {
				code := errorCode(s.log, err)
				for i, a := range alts {
					if a != nil {
						setErr(i, code, err.Error())
					}
				}
			} else {
				s.refreshSecurity()
			}
		}
	}

	if req.ValidateOnly { // nothing changed, nothing to audit
		return respond(resp)
	}
	for i, re := range req.Entries {
		set, remove := map[string]float64{}, []string{}
		for _, op := range re.Ops {
			if op.Remove {
				remove = append(remove, op.Key)
			} else {
				set[op.Key] = op.Value
			}
		}
		entity := quotaEntityString(entities[i])
		if entity == "" { // refused before it was understood (or not parsed at all)
			entity = rawQuotaEntityString(re.Entity)
		}
		res := resp.Entries[i]
		s.audit(r, "AlterClientQuotas", append([]any{"entity", entity, "set", set, "remove", remove},
			auditOutcome(res.ErrorCode, res.ErrorMessage)...)...)
	}
	return respond(resp)
}

// quotaAlteration validates one entry's ops; msg says why it is refused.
func quotaAlteration(e metadata.QuotaEntity, keys map[string]quotaKeyKind, ops []kmsg.AlterClientQuotasRequestEntryOp) (*metadata.QuotaAlteration, string) {
	alt := &metadata.QuotaAlteration{Entity: e, Set: map[string]float64{}}
	seen := map[string]bool{}
	for _, op := range ops {
		if seen[op.Key] {
			return nil, fmt.Sprintf("quota key %q appears more than once for entity %s", op.Key, quotaEntityString(e))
		}
		seen[op.Key] = true
		if op.Remove {
			alt.Remove = append(alt.Remove, op.Key)
			continue
		}
		if msg := checkQuotaValue(keys, op.Key, op.Value); msg != "" {
			return nil, msg
		}
		alt.Set[op.Key] = op.Value
	}
	return alt, ""
}

// rawQuotaEntityString names an entity that failed to parse, for the
// audit log.
func rawQuotaEntityString(comps []kmsg.AlterClientQuotasRequestEntryEntity) string {
	parts := make([]string, 0, len(comps))
	for _, c := range comps {
		name := "<default>"
		if c.Name != nil {
			name = *c.Name
		}
		parts = append(parts, c.Type+"="+name)
	}
	return strings.Join(parts, ",")
}

// quotaFilter is a parsed DescribeClientQuotas filter. Per entity type:
// absent = unconstrained, exact = the component must be set and equal
// (a Default QuotaName for match type DEFAULT), any = the component must
// be set.
type quotaFilter struct {
	exact  map[string]metadata.QuotaName
	any    map[string]bool
	strict bool
}

func parseQuotaFilter(req *kmsg.DescribeClientQuotasRequest) (quotaFilter, int16, string) {
	f := quotaFilter{exact: map[string]metadata.QuotaName{}, any: map[string]bool{}, strict: req.Strict}
	for _, c := range req.Components {
		typ := c.EntityType
		if typ == "" {
			return f, kerr.InvalidRequest.Code, "empty entity type in the filter"
		}
		if _, dup := f.exact[typ]; dup || f.any[typ] {
			return f, kerr.InvalidRequest.Code, fmt.Sprintf("entity type %s appears more than once in the filter", typ)
		}
		if typ != quotaTypeUser && typ != quotaTypeClientID && typ != quotaTypeIP {
			return f, kerr.UnsupportedVersion.Code, fmt.Sprintf("unsupported entity type %q", typ)
		}
		switch c.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if c.Match == nil {
				return f, kerr.InvalidRequest.Code, "match type EXACT needs a match string"
			}
			n := metadata.QuotaName{Set: true, Name: *c.Match}
			if typ == quotaTypeIP {
				// Stored ip entities are canonical; a name that is
				// not an address simply matches nothing.
				n, _ = canonicalIP(n)
			}
			f.exact[typ] = n
		case kmsg.QuotasMatchTypeDefault:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "match type DEFAULT takes no match string"
			}
			f.exact[typ] = metadata.QuotaName{Set: true, Default: true}
		case kmsg.QuotasMatchTypeAny:
			if c.Match != nil {
				return f, kerr.InvalidRequest.Code, "match type ANY takes no match string"
			}
			f.any[typ] = true
		default:
			return f, kerr.InvalidRequest.Code, fmt.Sprintf("unknown match type %d", c.MatchType)
		}
	}
	_, ipExact := f.exact[quotaTypeIP]
	_, userExact := f.exact[quotaTypeUser]
	_, clientExact := f.exact[quotaTypeClientID]
	if (ipExact || f.any[quotaTypeIP]) && (userExact || clientExact || f.any[quotaTypeUser] || f.any[quotaTypeClientID]) {
		return f, kerr.InvalidRequest.Code, "an ip filter component cannot be combined with user or client-id"
	}
	return f, 0, ""
}

func (f quotaFilter) matches(e metadata.QuotaEntity) bool {
	comps := map[string]metadata.QuotaName{quotaTypeUser: e.User, quotaTypeClientID: e.ClientID, quotaTypeIP: e.IP}
	if f.strict {
		n := 0
		for _, c := range comps {
			if c.Set {
				n++
			}
		}
		if n != len(f.exact)+len(f.any) {
			return false
		}
	}
	for typ, want := range f.exact {
		if comps[typ] != want {
			return false
		}
	}
	for typ := range f.any {
		if !comps[typ].Set {
			return false
		}
	}
	return true
}

func handleDescribeClientQuotas(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeClientQuotasRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	if !s.allowCluster(r, kmsg.ACLOperationDescribeConfigs) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(clusterDenied)
		return respond(resp)
	}
	f, code, msg := parseQuotaFilter(req)
	if code != 0 {
		resp.ErrorCode, resp.ErrorMessage = code, kmsg.StringPtr(msg)
		return respond(resp)
	}
	quotas := s.meta.ClientQuotas()
	entities := make([]metadata.QuotaEntity, 0, len(quotas))
	for e := range quotas {
		if f.matches(e) {
			entities = append(entities, e)
		}
	}
	slices.SortFunc(entities, compareQuotaEntities)
	for _, e := range entities {
		var entry kmsg.DescribeClientQuotasResponseEntry
		add := func(typ string, n metadata.QuotaName) {
			if !n.Set {
				return
			}
			c := kmsg.DescribeClientQuotasResponseEntryEntity{Type: typ}
			if !n.Default {
				c.Name = kmsg.StringPtr(n.Name)
			}
			entry.Entity = append(entry.Entity, c)
		}
		add(quotaTypeUser, e.User)
		add(quotaTypeClientID, e.ClientID)
		add(quotaTypeIP, e.IP)
		values := quotas[e]
		keys := make([]string, 0, len(values))
		for k := range values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			entry.Values = append(entry.Values, kmsg.DescribeClientQuotasResponseEntryValue{Key: k, Value: values[k]})
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return respond(resp)
}

// compareQuotaEntities orders entities for a stable describe answer:
// by user, then client-id, then ip; absent before default before names.
func compareQuotaEntities(a, b metadata.QuotaEntity) int {
	rank := func(n metadata.QuotaName) int {
		switch {
		case !n.Set:
			return 0
		case n.Default:
			return 1
		}
		return 2
	}
	for _, p := range [][2]metadata.QuotaName{{a.User, b.User}, {a.ClientID, b.ClientID}, {a.IP, b.IP}} {
		if c := cmp.Or(cmp.Compare(rank(p[0]), rank(p[1])), strings.Compare(p[0].Name, p[1].Name)); c != 0 {
			return c
		}
	}
	return 0
}
