package acl

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/metadata"
)

func ptr(s string) *string { return &s }

func TestFilterMatches(t *testing.T) {
	// Named bindings; each case lists the names it must match, in order.
	bindings := []struct {
		id string
		b  metadata.ACL
	}{
		{"lit-foo", allowTopic("foo", alice, OpRead)},
		{"lit-star", allowTopic(Wildcard, bob, OpWrite)},
		{"pre-fo", denyPrefix("fo", alice, OpRead)},
		{"pre-foobar", allowPrefix("foobar", alice, OpAll)},
		{"lit-foobar-h1", bind(ResourceTopic, PatternLiteral, "foobar", alice, h1, OpDescribe, PermissionAllow)},
		{"group-foo", bind(ResourceGroup, PatternLiteral, "foo", alice, Wildcard, OpRead, PermissionAllow)},
		{"group-pre-foo", bind(ResourceGroup, PatternPrefixed, "foo", WildcardPrincipal, Wildcard, OpRead, PermissionAllow)},
	}
	all := func(f Filter) Filter {
		if f.ResourceType == 0 {
			f.ResourceType = ResourceAny
		}
		if f.PatternType == 0 {
			f.PatternType = PatternAny
		}
		if f.Operation == 0 {
			f.Operation = OpAny
		}
		if f.Permission == 0 {
			f.Permission = PermissionAny
		}
		return f
	}
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{name: "match everything", f: all(Filter{}), want: []string{"lit-foo", "lit-star", "pre-fo", "pre-foobar", "lit-foobar-h1", "group-foo", "group-pre-foo"}},
		{name: "resource type", f: all(Filter{ResourceType: ResourceGroup}), want: []string{"group-foo", "group-pre-foo"}},
		{name: "literal pattern type", f: all(Filter{ResourceType: ResourceTopic, PatternType: PatternLiteral}), want: []string{"lit-foo", "lit-star", "lit-foobar-h1"}},
		{name: "prefixed pattern type", f: all(Filter{PatternType: PatternPrefixed}), want: []string{"pre-fo", "pre-foobar", "group-pre-foo"}},
		{name: "ANY pattern with name is exact", f: all(Filter{ResourceName: ptr("foo")}), want: []string{"lit-foo", "group-foo", "group-pre-foo"}},
		{name: "LITERAL with name", f: all(Filter{ResourceName: ptr("foo"), PatternType: PatternLiteral}), want: []string{"lit-foo", "group-foo"}},
		{name: "LITERAL star is exact", f: all(Filter{ResourceName: ptr("*"), PatternType: PatternLiteral}), want: []string{"lit-star"}},
		{name: "PREFIXED with name is exact", f: all(Filter{ResourceName: ptr("fo"), PatternType: PatternPrefixed}), want: []string{"pre-fo"}},
		{name: "MATCH finds what applies", f: all(Filter{ResourceType: ResourceTopic, ResourceName: ptr("foo"), PatternType: PatternMatch}),
			want: []string{"lit-foo", "lit-star", "pre-fo"}},
		{name: "MATCH longer name", f: all(Filter{ResourceType: ResourceTopic, ResourceName: ptr("foobarbaz"), PatternType: PatternMatch}),
			want: []string{"lit-star", "pre-fo", "pre-foobar"}},
		{name: "MATCH across types", f: all(Filter{ResourceName: ptr("foo"), PatternType: PatternMatch}),
			want: []string{"lit-foo", "lit-star", "pre-fo", "group-foo", "group-pre-foo"}},
		{name: "MATCH without name matches all", f: all(Filter{ResourceType: ResourceTopic, PatternType: PatternMatch}),
			want: []string{"lit-foo", "lit-star", "pre-fo", "pre-foobar", "lit-foobar-h1"}},
		{name: "MATCH name star", f: all(Filter{ResourceType: ResourceTopic, ResourceName: ptr("*"), PatternType: PatternMatch}), want: []string{"lit-star"}},
		{name: "principal", f: all(Filter{Principal: ptr(alice)}), want: []string{"lit-foo", "pre-fo", "pre-foobar", "lit-foobar-h1", "group-foo"}},
		{name: "wildcard principal is not expanded", f: all(Filter{Principal: ptr(WildcardPrincipal)}), want: []string{"group-pre-foo"}},
		{name: "host", f: all(Filter{Host: ptr(h1)}), want: []string{"lit-foobar-h1"}},
		{name: "wildcard host is not expanded", f: all(Filter{ResourceType: ResourceTopic, Host: ptr(Wildcard)}), want: []string{"lit-foo", "lit-star", "pre-fo", "pre-foobar"}},
		{name: "operation", f: all(Filter{Operation: OpRead}), want: []string{"lit-foo", "pre-fo", "group-foo", "group-pre-foo"}},
		{name: "operation ALL is exact", f: all(Filter{Operation: OpAll}), want: []string{"pre-foobar"}},
		{name: "permission", f: all(Filter{Permission: PermissionDeny}), want: []string{"pre-fo"}},
		{name: "everything set", f: Filter{ResourceType: ResourceTopic, ResourceName: ptr("foo"), PatternType: PatternLiteral, Principal: ptr(alice), Host: ptr(Wildcard), Operation: OpRead, Permission: PermissionAllow},
			want: []string{"lit-foo"}},
		{name: "unknown resource type matches nothing", f: Filter{ResourceType: ResourceUnknown, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}},
		{name: "unknown pattern type matches nothing", f: Filter{ResourceType: ResourceAny, PatternType: PatternUnknown, Operation: OpAny, Permission: PermissionAny}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, b := range bindings {
				if tc.f.Matches(b.b) {
					got = append(got, b.id)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("matched %v, want %v", got, tc.want)
			}
		})
	}
}

// TestBindingMatchesItsOwnFilter: DeleteAcls of exactly the bindings a
// client created is how tools remove ACLs; a binding's exact filter must
// match it.
func TestBindingMatchesItsOwnFilter(t *testing.T) {
	for _, b := range []metadata.ACL{allowTopic("t", alice, OpRead), denyPrefix("p", WildcardPrincipal, OpAll), allowTopic(Wildcard, bob, OpWrite)} {
		f := Filter{ResourceType: b.ResourceType, ResourceName: &b.ResourceName, PatternType: b.PatternType,
			Principal: &b.Principal, Host: &b.Host, Operation: b.Operation, Permission: b.Permission}
		if err := ValidateFilter(f); err != nil {
			t.Fatal(err)
		}
		if !f.Matches(b) {
			t.Fatalf("%+v does not match its own filter", b)
		}
	}
}

func TestValidateBinding(t *testing.T) {
	ok := bind(ResourceTopic, PatternLiteral, "t", alice, Wildcard, OpRead, PermissionAllow)
	with := func(f func(*metadata.ACL)) metadata.ACL { b := ok; f(&b); return b }
	tests := []struct {
		name    string
		b       metadata.ACL
		wantErr string // substring of the message; "" = valid
	}{
		{name: "valid literal", b: ok},
		{name: "valid prefixed", b: with(func(b *metadata.ACL) { b.PatternType = PatternPrefixed })},
		{name: "valid wildcard name", b: with(func(b *metadata.ACL) { b.ResourceName = Wildcard })},
		{name: "valid prefixed star", b: with(func(b *metadata.ACL) { b.ResourceName = Wildcard; b.PatternType = PatternPrefixed })},
		{name: "valid wildcard principal", b: with(func(b *metadata.ACL) { b.Principal = WildcardPrincipal })},
		{name: "valid other principal type", b: with(func(b *metadata.ACL) { b.Principal = "Group:ops" })},
		{name: "valid principal with colon in name", b: with(func(b *metadata.ACL) { b.Principal = "User:CN=a:b" })},
		{name: "valid empty principal name", b: with(func(b *metadata.ACL) { b.Principal = "User:" })},
		{name: "valid host", b: with(func(b *metadata.ACL) { b.Host = h1 })},
		{name: "valid ALL", b: with(func(b *metadata.ACL) { b.Operation = OpAll })},
		{name: "valid op not used by the type", b: with(func(b *metadata.ACL) { b.Operation = OpClusterAction })},
		{name: "valid deny", b: with(func(b *metadata.ACL) { b.Permission = PermissionDeny })},
		{name: "valid cluster", b: with(func(b *metadata.ACL) { b.ResourceType = ResourceCluster; b.ResourceName = ClusterName })},
		{name: "valid user resource", b: with(func(b *metadata.ACL) { b.ResourceType = ResourceUser; b.Operation = OpCreateTokens })},
		{name: "unknown resource type", b: with(func(b *metadata.ACL) { b.ResourceType = ResourceUnknown }), wantErr: "resource type UNKNOWN"},
		{name: "ANY resource type", b: with(func(b *metadata.ACL) { b.ResourceType = ResourceAny }), wantErr: "resource type ANY"},
		{name: "out of range resource type", b: with(func(b *metadata.ACL) { b.ResourceType = 8 }), wantErr: "resource type UNKNOWN(8)"},
		{name: "unknown pattern", b: with(func(b *metadata.ACL) { b.PatternType = PatternUnknown }), wantErr: "pattern type UNKNOWN"},
		{name: "ANY pattern", b: with(func(b *metadata.ACL) { b.PatternType = PatternAny }), wantErr: "pattern type ANY"},
		{name: "MATCH pattern", b: with(func(b *metadata.ACL) { b.PatternType = PatternMatch }), wantErr: "pattern type MATCH"},
		{name: "empty name", b: with(func(b *metadata.ACL) { b.ResourceName = "" }), wantErr: "empty resource name"},
		{name: "cluster with other name", b: with(func(b *metadata.ACL) { b.ResourceType = ResourceCluster; b.ResourceName = "c" }),
			wantErr: "The only valid name for the CLUSTER resource is kafka-cluster"},
		{name: "principal without type", b: with(func(b *metadata.ACL) { b.Principal = "alice" }), wantErr: `invalid principal "alice"`},
		{name: "principal with empty type", b: with(func(b *metadata.ACL) { b.Principal = ":alice" }), wantErr: "invalid principal"},
		{name: "empty principal", b: with(func(b *metadata.ACL) { b.Principal = "" }), wantErr: "invalid principal"},
		{name: "empty host", b: with(func(b *metadata.ACL) { b.Host = "" }), wantErr: "empty host"},
		{name: "unknown op", b: with(func(b *metadata.ACL) { b.Operation = OpUnknown }), wantErr: "operation UNKNOWN"},
		{name: "ANY op", b: with(func(b *metadata.ACL) { b.Operation = OpAny }), wantErr: "operation ANY"},
		{name: "out of range op", b: with(func(b *metadata.ACL) { b.Operation = 15 }), wantErr: "operation UNKNOWN(15)"},
		{name: "unknown permission", b: with(func(b *metadata.ACL) { b.Permission = PermissionUnknown }), wantErr: "permission type UNKNOWN"},
		{name: "ANY permission", b: with(func(b *metadata.ACL) { b.Permission = PermissionAny }), wantErr: "permission type ANY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateBinding(tc.b)
			checkInvalid(t, err, tc.wantErr)
		})
	}
}

func TestValidateFilter(t *testing.T) {
	ok := Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}
	with := func(f func(*Filter)) Filter { c := ok; f(&c); return c }
	tests := []struct {
		name    string
		f       Filter
		wantErr string
	}{
		{name: "all ANY", f: ok},
		{name: "MATCH", f: with(func(f *Filter) { f.PatternType = PatternMatch; f.ResourceName = ptr("t") })},
		{name: "concrete", f: Filter{ResourceType: ResourceTopic, ResourceName: ptr("t"), PatternType: PatternPrefixed,
			Principal: ptr(alice), Host: ptr(h1), Operation: OpAll, Permission: PermissionDeny}},
		{name: "empty strings are fine", f: with(func(f *Filter) { f.ResourceName = ptr(""); f.Principal = ptr(""); f.Host = ptr("") })},
		{name: "unknown resource type", f: with(func(f *Filter) { f.ResourceType = ResourceUnknown }), wantErr: "resource type UNKNOWN"},
		{name: "out of range resource type", f: with(func(f *Filter) { f.ResourceType = -1 }), wantErr: "resource type UNKNOWN(-1)"},
		{name: "unknown pattern", f: with(func(f *Filter) { f.PatternType = PatternUnknown }), wantErr: "pattern type UNKNOWN"},
		{name: "out of range pattern", f: with(func(f *Filter) { f.PatternType = 5 }), wantErr: "pattern type UNKNOWN(5)"},
		{name: "unknown operation", f: with(func(f *Filter) { f.Operation = OpUnknown }), wantErr: "operation UNKNOWN"},
		{name: "unknown permission", f: with(func(f *Filter) { f.Permission = PermissionUnknown }), wantErr: "permission type UNKNOWN"},
		{name: "out of range permission", f: with(func(f *Filter) { f.Permission = 4 }), wantErr: "permission type UNKNOWN(4)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkInvalid(t, ValidateFilter(tc.f), tc.wantErr)
		})
	}
}

func checkInvalid(t *testing.T, err error, want string) {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("%v does not match ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not contain %q", err.Error(), want)
	}
}

// TestValidBindingsAreIndexed: whatever ValidateBinding accepts, the
// authorizer honours (a valid binding is never silently dropped).
func TestValidBindingsAreIndexed(t *testing.T) {
	for rt := ResourceTopic; rt <= ResourceUser; rt++ {
		for op := OpAll; op <= OpDescribeTokens; op++ {
			for _, pat := range []int8{PatternLiteral, PatternPrefixed} {
				name := "r"
				if rt == ResourceCluster {
					name = ClusterName
				}
				b := bind(rt, pat, name, alice, Wildcard, op, PermissionAllow)
				if err := ValidateBinding(b); err != nil {
					t.Fatal(err)
				}
				a := New(Config{})
				a.Update([]metadata.ACL{b})
				if !a.Authorize(alice, h1, op, rt, name) {
					t.Fatalf("%+v not honoured", b)
				}
			}
		}
	}
}

func TestNames(t *testing.T) {
	if ResourceTypeName(ResourceTransactionalID) != "TRANSACTIONAL_ID" || OperationName(OpIdempotentWrite) != "IDEMPOTENT_WRITE" ||
		PatternTypeName(PatternPrefixed) != "PREFIXED" || PermissionName(PermissionAllow) != "ALLOW" || OperationName(-3) != "UNKNOWN(-3)" {
		t.Fatal("names")
	}
}

// FuzzValidateBinding: a binding ValidateBinding accepts is found by its
// own exact filter (so DeleteAcls can remove it) and decides a request
// that repeats it (so it is honoured as created).
func FuzzValidateBinding(f *testing.F) {
	f.Add(int8(ResourceTopic), "t", int8(PatternLiteral), alice, "*", int8(OpRead), int8(PermissionAllow))
	f.Add(int8(ResourceCluster), ClusterName, int8(PatternPrefixed), "Group:x", h1, int8(OpAll), int8(PermissionDeny))
	f.Add(int8(ResourceGroup), "*", int8(PatternLiteral), "User:", "", int8(OpAny), int8(PermissionAny))
	f.Fuzz(func(t *testing.T, rt int8, name string, pat int8, principal, host string, op, perm int8) {
		b := metadata.ACL{ResourceType: rt, ResourceName: name, PatternType: pat, Principal: principal, Host: host, Operation: op, Permission: perm}
		err := ValidateBinding(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || err.Error() == "" {
				t.Fatalf("error %v does not match ErrInvalid or has no message", err)
			}
			return
		}
		exact := Filter{ResourceType: rt, ResourceName: &name, PatternType: pat, Principal: &principal, Host: &host, Operation: op, Permission: perm}
		if err := ValidateFilter(exact); err != nil {
			t.Fatalf("exact filter of a valid binding invalid: %v", err)
		}
		if !exact.Matches(b) {
			t.Fatal("valid binding does not match its exact filter")
		}
		a := New(Config{AllowIfNoACL: true})
		a.Update([]metadata.ACL{b})
		reqHost := host
		if reqHost == Wildcard {
			reqHost = h1
		}
		if got := a.Authorize(principal, reqHost, op, rt, name); got != (perm == PermissionAllow) {
			t.Fatalf("Authorize repeating %+v = %v", b, got)
		}
	})
}
