package acl

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/strata-broker/strata/metadata"
)

// Authorizer decides requests against the current ACL set. The zero value
// is not usable; call New.
type Authorizer struct {
	super        map[string]struct{}
	allowIfNoACL bool
	ix           atomic.Pointer[index]
}

// Config configures an Authorizer.
type Config struct {
	// SuperUsers are principals ("User:admin") allowed everything,
	// whatever the ACLs say (super.users). Blank entries are ignored and
	// surrounding spaces trimmed, as Kafka does with its ';'-separated list.
	SuperUsers []string
	// AllowIfNoACL is allow.everyone.if.no.acl.found: a request on a
	// resource no binding applies to is allowed instead of refused.
	AllowIfNoACL bool
}

// New returns an authorizer with no ACLs.
func New(cfg Config) *Authorizer {
	a := &Authorizer{super: make(map[string]struct{}), allowIfNoACL: cfg.AllowIfNoACL}
	for _, u := range cfg.SuperUsers {
		if u = strings.TrimSpace(u); u != "" {
			a.super[u] = struct{}{}
		}
	}
	a.ix.Store(&index{})
	return a
}

// Update replaces the ACL set. The new set is indexed before it is
// published, so concurrent Authorize calls see the old set or the new one,
// never part of it. Bindings with a resource type, pattern type or
// permission outside Kafka's concrete values cannot come from the metadata
// store (it validates them) and are ignored, except that a binding with a
// valid resource pattern but an unknown operation or permission still
// counts as "an ACL exists for this resource" for allow.everyone.if.no.acl.found,
// which errs on the side of refusing.
func (a *Authorizer) Update(acls []metadata.ACL) {
	a.ix.Store(buildIndex(acls))
}

// Authorize reports whether principal connecting from host may do op on
// the resource (resType, name). name is the literal resource name
// (ClusterName for CLUSTER). It does not allocate.
func (a *Authorizer) Authorize(principal, host string, op, resType int8, name string) bool {
	if a.isSuper(principal) {
		return true
	}
	if !concreteResourceType(resType) || !concreteOp(op) {
		return false
	}
	t := a.ix.Load().types[resType]
	if t == nil {
		return a.allowIfNoACL
	}
	v := t.evaluate(principal, host, name)
	bit := uint32(1) << uint(op)
	switch {
	case v.deny&bit != 0:
		return false
	case v.allow&bit != 0:
		return true
	}
	return !v.found && a.allowIfNoACL
}

// Ops is the bit field (bit 1<<op) of the operations principal may do on
// the resource, over the operations Kafka reports for its type (see
// SupportedOps), for the authorized_operations fields of Metadata,
// DescribeGroups and DescribeCluster. Each bit is what Authorize would
// answer for that operation.
func (a *Authorizer) Ops(principal, host string, resType int8, name string) int32 {
	if !concreteResourceType(resType) {
		return 0
	}
	supported := supportedOps[resType]
	if a.isSuper(principal) {
		return int32(supported)
	}
	t := a.ix.Load().types[resType]
	if t == nil {
		if a.allowIfNoACL {
			return int32(supported)
		}
		return 0
	}
	v := t.evaluate(principal, host, name)
	if !v.found && a.allowIfNoACL {
		return int32(supported)
	}
	return int32(supported & v.allow &^ v.deny)
}

// probeName is the resource name Kafka's authorizeByResourceType asks
// about first: it stands for "some resource nobody wrote an ACL for", so
// super users and allow.everyone.if.no.acl.found pass through the ordinary
// rules. Keeping Kafka's exact name keeps the corner cases identical.
const probeName = "hardcode"

// AuthorizeAny reports whether principal may do op on at least one
// resource of resType: Kafka's authorizeByResourceType, used by
// InitProducerId without a transactional id (KIP-679) and similar checks.
// It is true when
//   - Authorize allows op on a resource named "hardcode" (Kafka's probe),
//     which covers super users and allow.everyone.if.no.acl.found when no
//     binding applies to that name; or
//   - an ALLOW binding for the principal (or "User:*"), the host (or "*")
//     and op (or ALL) exists that no DENY of the same kind shadows. A DENY
//     on LITERAL "*" shadows everything; a PREFIXED DENY shadows the
//     ALLOWs whose names start with it; a LITERAL DENY shadows only the
//     LITERAL ALLOW of the same name. An ALLOW on LITERAL "*" wins over
//     the other DENYs. Implied operations play no part here, as in Kafka.
//
// It returns false for a non-concrete op or resType. It may allocate.
func (a *Authorizer) AuthorizeAny(principal, host string, op, resType int8) bool {
	if !concreteResourceType(resType) || !concreteOp(op) {
		return false
	}
	if a.Authorize(principal, host, op, resType, probeName) {
		return true
	}
	t := a.ix.Load().types[resType]
	if t == nil {
		return false
	}
	var (
		denyLiteral, denyPrefix map[string]struct{}
		allowLiteral            []string
		allowPrefix             []string
		wildcardAllow           bool
	)
	for i := range t.bindings {
		b := &t.bindings[i]
		if b.Host != Wildcard && b.Host != host {
			continue
		}
		if b.Principal != principal && b.Principal != WildcardPrincipal {
			continue
		}
		if b.Operation != op && b.Operation != OpAll {
			continue
		}
		literal := b.PatternType == PatternLiteral
		switch b.Permission {
		case PermissionDeny:
			if literal && b.ResourceName == Wildcard {
				return false
			}
			if literal {
				denyLiteral = addSet(denyLiteral, b.ResourceName)
			} else {
				denyPrefix = addSet(denyPrefix, b.ResourceName)
			}
		case PermissionAllow:
			switch {
			case literal && b.ResourceName == Wildcard:
				wildcardAllow = true
			case literal:
				allowLiteral = append(allowLiteral, b.ResourceName)
			default:
				allowPrefix = append(allowPrefix, b.ResourceName)
			}
		}
	}
	if wildcardAllow {
		return true
	}
	for _, name := range allowLiteral {
		if _, denied := denyLiteral[name]; !denied && !hasPrefixIn(name, denyPrefix) {
			return true
		}
	}
	for _, name := range allowPrefix {
		if !hasPrefixIn(name, denyPrefix) {
			return true
		}
	}
	return false
}

func addSet(m map[string]struct{}, s string) map[string]struct{} {
	if m == nil {
		m = make(map[string]struct{})
	}
	m[s] = struct{}{}
	return m
}

// hasPrefixIn reports whether some non-empty prefix of s (s included) is in
// prefixes.
func hasPrefixIn(s string, prefixes map[string]struct{}) bool {
	if len(prefixes) == 0 {
		return false
	}
	for i := 1; i <= len(s); i++ {
		if _, ok := prefixes[s[:i]]; ok {
			return true
		}
	}
	return false
}

func (a *Authorizer) isSuper(principal string) bool {
	if len(a.super) == 0 {
		return false
	}
	_, ok := a.super[principal]
	return ok
}

// index is one immutable ACL set, split by resource type. A nil entry
// means no binding of that type exists.
type index struct {
	types [numResourceTypes]*typeIndex
}

// typeIndex holds the bindings of one resource type, grouped by the
// resource names they apply to.
type typeIndex struct {
	literal  map[string]*aceSet // LITERAL bindings except "*", by name
	wildcard *aceSet            // LITERAL "*"
	prefixed map[string]*aceSet // PREFIXED bindings, by prefix
	// prefixLens are the distinct lengths of the prefixes, ascending: the
	// prefixed bindings applying to a name are found by looking up name
	// cut at each of them, never by scanning the prefixes.
	prefixLens []int
	bindings   []metadata.ACL // every binding of the type, for AuthorizeAny
}

// aceSet holds the entries of the bindings on one resource pattern, keyed
// by principal so a request looks at its own entries and the wildcard
// principal's only.
type aceSet struct {
	anyone      []ace // principal "User:*"
	byPrincipal map[string][]ace
}

// ace is one binding's entry reduced to what evaluation needs: the host
// and the operations it grants or refuses (implied operations expanded).
type ace struct {
	host        string
	allow, deny uint32
}

func (s *aceSet) add(principal string, e ace) {
	if principal == WildcardPrincipal {
		s.anyone = append(s.anyone, e)
		return
	}
	if s.byPrincipal == nil {
		s.byPrincipal = make(map[string][]ace)
	}
	s.byPrincipal[principal] = append(s.byPrincipal[principal], e)
}

// verdict accumulates the matching entries of every pattern that applies
// to a resource.
type verdict struct {
	allow, deny uint32 // operations granted / refused by matching entries
	found       bool   // some binding (of anyone) applies to the resource
}

func (v *verdict) collect(s *aceSet, principal, host string) {
	if s == nil {
		return
	}
	v.found = true
	v.match(s.anyone, host)
	if s.byPrincipal != nil {
		v.match(s.byPrincipal[principal], host)
	}
}

func (v *verdict) match(es []ace, host string) {
	for i := range es {
		if e := &es[i]; e.host == Wildcard || e.host == host {
			v.allow |= e.allow
			v.deny |= e.deny
		}
	}
}

func (t *typeIndex) evaluate(principal, host, name string) verdict {
	var v verdict
	v.collect(t.wildcard, principal, host)
	v.collect(t.literal[name], principal, host)
	for _, n := range t.prefixLens {
		if n > len(name) {
			break
		}
		v.collect(t.prefixed[name[:n]], principal, host)
	}
	return v
}

func buildIndex(acls []metadata.ACL) *index {
	ix := &index{}
	for _, b := range acls {
		if !concreteResourceType(b.ResourceType) {
			continue
		}
		t := ix.types[b.ResourceType]
		if t == nil {
			t = &typeIndex{}
			ix.types[b.ResourceType] = t
		}
		var s *aceSet
		switch {
		case b.PatternType == PatternLiteral && b.ResourceName == Wildcard:
			if t.wildcard == nil {
				t.wildcard = &aceSet{}
			}
			s = t.wildcard
		case b.PatternType == PatternLiteral:
			s = getSet(&t.literal, b.ResourceName)
		case b.PatternType == PatternPrefixed:
			s = getSet(&t.prefixed, b.ResourceName)
			t.prefixLens = append(t.prefixLens, len(b.ResourceName))
		default:
			continue
		}
		e := ace{host: b.Host}
		switch b.Permission {
		case PermissionAllow:
			e.allow = allowMask(b.Operation)
		case PermissionDeny:
			e.deny = denyMask(b.Operation)
		}
		s.add(b.Principal, e)
		t.bindings = append(t.bindings, b)
	}
	for _, t := range ix.types {
		if t != nil {
			slices.SortFunc(t.prefixLens, cmp.Compare[int])
			t.prefixLens = slices.Compact(t.prefixLens)
		}
	}
	return ix
}

func getSet(m *map[string]*aceSet, name string) *aceSet {
	if *m == nil {
		*m = make(map[string]*aceSet)
	}
	s := (*m)[name]
	if s == nil {
		s = &aceSet{}
		(*m)[name] = s
	}
	return s
}
