package acl

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/strata-broker/strata/metadata"
)

const (
	alice = "User:alice"
	bob   = "User:bob"
	h1    = "10.0.0.1"
	h2    = "10.0.0.2"
)

// bind builds a binding; the helpers below keep the tables readable.
func bind(rt, pat int8, name, principal, host string, op, perm int8) metadata.ACL {
	return metadata.ACL{ResourceType: rt, ResourceName: name, PatternType: pat,
		Principal: principal, Host: host, Operation: op, Permission: perm}
}

func allowTopic(name, principal string, op int8) metadata.ACL {
	return bind(ResourceTopic, PatternLiteral, name, principal, Wildcard, op, PermissionAllow)
}

func denyTopic(name, principal string, op int8) metadata.ACL {
	return bind(ResourceTopic, PatternLiteral, name, principal, Wildcard, op, PermissionDeny)
}

func allowPrefix(name, principal string, op int8) metadata.ACL {
	return bind(ResourceTopic, PatternPrefixed, name, principal, Wildcard, op, PermissionAllow)
}

func denyPrefix(name, principal string, op int8) metadata.ACL {
	return bind(ResourceTopic, PatternPrefixed, name, principal, Wildcard, op, PermissionDeny)
}

type request struct {
	principal, host string
	op, rt          int8
	name            string
}

// topicReq is alice on host h1 doing op on topic name.
func topicReq(op int8, name string) request {
	return request{principal: alice, host: h1, op: op, rt: ResourceTopic, name: name}
}

func TestAuthorize(t *testing.T) {
	withHost := func(b metadata.ACL, host string) metadata.ACL { b.Host = host; return b }
	tests := []struct {
		name string
		cfg  Config
		acls []metadata.ACL
		req  request
		want bool
	}{
		{name: "no acls denies by default", req: topicReq(OpRead, "t"), want: false},
		{name: "no acls with allow-if-no-acl", cfg: Config{AllowIfNoACL: true}, req: topicReq(OpRead, "t"), want: true},
		{name: "literal allow", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, req: topicReq(OpRead, "t"), want: true},
		{name: "literal allow other name", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, req: topicReq(OpRead, "u"), want: false},
		{name: "literal is not a prefix", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, req: topicReq(OpRead, "tt"), want: false},
		{name: "literal allow other op", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, req: topicReq(OpWrite, "t"), want: false},
		{name: "literal allow other principal", acls: []metadata.ACL{allowTopic("t", bob, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "principal type is part of the principal", acls: []metadata.ACL{allowTopic("t", "Group:alice", OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "other resource type", acls: []metadata.ACL{bind(ResourceGroup, PatternLiteral, "t", alice, Wildcard, OpRead, PermissionAllow)}, req: topicReq(OpRead, "t"), want: false},
		{name: "wildcard resource name", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpRead)}, req: topicReq(OpRead, "anything"), want: true},
		{name: "wildcard principal", acls: []metadata.ACL{allowTopic("t", WildcardPrincipal, OpRead)}, req: topicReq(OpRead, "t"), want: true},
		{name: "wildcard principal matches other principal types", acls: []metadata.ACL{allowTopic("t", WildcardPrincipal, OpRead)},
			req: request{principal: "Group:ops", host: h1, op: OpRead, rt: ResourceTopic, name: "t"}, want: true},
		{name: "host equal", acls: []metadata.ACL{withHost(allowTopic("t", alice, OpRead), h1)}, req: topicReq(OpRead, "t"), want: true},
		{name: "host different", acls: []metadata.ACL{withHost(allowTopic("t", alice, OpRead), h2)}, req: topicReq(OpRead, "t"), want: false},
		{name: "prefix allow longer name", acls: []metadata.ACL{allowPrefix("foo", alice, OpRead)}, req: topicReq(OpRead, "foobar"), want: true},
		{name: "prefix allow same name", acls: []metadata.ACL{allowPrefix("foo", alice, OpRead)}, req: topicReq(OpRead, "foo"), want: true},
		{name: "prefix allow shorter name", acls: []metadata.ACL{allowPrefix("foo", alice, OpRead)}, req: topicReq(OpRead, "fo"), want: false},
		{name: "prefix allow unrelated name", acls: []metadata.ACL{allowPrefix("foo", alice, OpRead)}, req: topicReq(OpRead, "bar"), want: false},
		{name: "prefixed star is a prefix, not a wildcard", acls: []metadata.ACL{allowPrefix("*", alice, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "prefixed star applies to names starting with star", acls: []metadata.ACL{allowPrefix("*", alice, OpRead)}, req: topicReq(OpRead, "*t"), want: true},
		{name: "deny wins over allow", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", alice, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "prefix deny wins over literal allow", acls: []metadata.ACL{allowTopic("foobar", alice, OpRead), denyPrefix("foo", alice, OpRead)}, req: topicReq(OpRead, "foobar"), want: false},
		{name: "wildcard deny wins over literal allow", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic(Wildcard, alice, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "wildcard principal deny wins", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", WildcardPrincipal, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "deny of other principal ignored", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", bob, OpRead)}, req: topicReq(OpRead, "t"), want: true},
		{name: "deny of other host ignored", acls: []metadata.ACL{allowTopic("t", alice, OpRead), withHost(denyTopic("t", alice, OpRead), h2)}, req: topicReq(OpRead, "t"), want: true},
		{name: "deny of other op ignored", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", alice, OpWrite)}, req: topicReq(OpRead, "t"), want: true},
		{name: "longer prefix allow with shorter prefix deny of other principal", acls: []metadata.ACL{denyPrefix("a", bob, OpRead), allowPrefix("ab", alice, OpRead)}, req: topicReq(OpRead, "abc"), want: true},
		{name: "allow ALL", acls: []metadata.ACL{allowTopic("t", alice, OpAll)}, req: topicReq(OpAlterConfigs, "t"), want: true},
		{name: "deny ALL", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", alice, OpAll)}, req: topicReq(OpRead, "t"), want: false},
		{name: "READ implies DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, req: topicReq(OpDescribe, "t"), want: true},
		{name: "WRITE implies DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpWrite)}, req: topicReq(OpDescribe, "t"), want: true},
		{name: "DELETE implies DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpDelete)}, req: topicReq(OpDescribe, "t"), want: true},
		{name: "ALTER implies DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpAlter)}, req: topicReq(OpDescribe, "t"), want: true},
		{name: "CREATE does not imply DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpCreate)}, req: topicReq(OpDescribe, "t"), want: false},
		{name: "DESCRIBE does not imply READ", acls: []metadata.ACL{allowTopic("t", alice, OpDescribe)}, req: topicReq(OpRead, "t"), want: false},
		{name: "ALTER_CONFIGS implies DESCRIBE_CONFIGS", acls: []metadata.ACL{allowTopic("t", alice, OpAlterConfigs)}, req: topicReq(OpDescribeConfigs, "t"), want: true},
		{name: "DESCRIBE_CONFIGS does not imply ALTER_CONFIGS", acls: []metadata.ACL{allowTopic("t", alice, OpDescribeConfigs)}, req: topicReq(OpAlterConfigs, "t"), want: false},
		{name: "ALTER does not imply DESCRIBE_CONFIGS", acls: []metadata.ACL{allowTopic("t", alice, OpAlter)}, req: topicReq(OpDescribeConfigs, "t"), want: false},
		{name: "implied DESCRIBE via prefix and wildcard principal", acls: []metadata.ACL{allowPrefix("t", WildcardPrincipal, OpWrite)}, req: topicReq(OpDescribe, "topic"), want: true},
		{name: "DENY READ does not deny DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpAll), denyTopic("t", alice, OpRead)}, req: topicReq(OpDescribe, "t"), want: true},
		{name: "DENY READ denies READ despite ALL", acls: []metadata.ACL{allowTopic("t", alice, OpAll), denyTopic("t", alice, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "DENY DESCRIBE beats implied DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpRead), denyTopic("t", alice, OpDescribe)}, req: topicReq(OpDescribe, "t"), want: false},
		{name: "DENY ALTER_CONFIGS does not deny DESCRIBE_CONFIGS", acls: []metadata.ACL{allowTopic("t", alice, OpAll), denyTopic("t", alice, OpAlterConfigs)}, req: topicReq(OpDescribeConfigs, "t"), want: true},
		{name: "super user with no acls", cfg: Config{SuperUsers: []string{"User:admin"}},
			req: request{principal: "User:admin", host: h1, op: OpAlter, rt: ResourceCluster, name: ClusterName}, want: true},
		{name: "super user despite deny ALL", cfg: Config{SuperUsers: []string{" User:admin ", ""}}, acls: []metadata.ACL{denyTopic(Wildcard, WildcardPrincipal, OpAll)},
			req: request{principal: "User:admin", host: h1, op: OpWrite, rt: ResourceTopic, name: "t"}, want: true},
		{name: "super user list is exact", cfg: Config{SuperUsers: []string{"User:admin"}},
			req: request{principal: "User:Admin", host: h1, op: OpWrite, rt: ResourceTopic, name: "t"}, want: false},
		{name: "allow-if-no-acl with acls on another topic", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowTopic("u", bob, OpRead)}, req: topicReq(OpRead, "t"), want: true},
		{name: "allow-if-no-acl with acls of another type", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{bind(ResourceGroup, PatternLiteral, "t", bob, Wildcard, OpRead, PermissionAllow)}, req: topicReq(OpRead, "t"), want: true},
		{name: "allow-if-no-acl but the topic has acls of someone else", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowTopic("t", bob, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "allow-if-no-acl but the topic has acls for another op", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowTopic("t", alice, OpWrite)}, req: topicReq(OpRead, "t"), want: false},
		{name: "allow-if-no-acl but a prefix covers the topic", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowPrefix("t", bob, OpRead)}, req: topicReq(OpRead, "topic"), want: false},
		{name: "allow-if-no-acl but a wildcard covers the topic", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowTopic(Wildcard, bob, OpRead)}, req: topicReq(OpRead, "t"), want: false},
		{name: "allow-if-no-acl with a prefix that does not cover", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowPrefix("topic", bob, OpRead)}, req: topicReq(OpRead, "top"), want: true},
		{name: "allow-if-no-acl and a deny on another host", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{withHost(denyTopic("t", alice, OpRead), h2)}, req: topicReq(OpRead, "t"), want: false},
		{name: "cluster resource", acls: []metadata.ACL{bind(ResourceCluster, PatternLiteral, ClusterName, alice, Wildcard, OpIdempotentWrite, PermissionAllow)},
			req: request{principal: alice, host: h1, op: OpIdempotentWrite, rt: ResourceCluster, name: ClusterName}, want: true},
		{name: "transactional id by prefix", acls: []metadata.ACL{bind(ResourceTransactionalID, PatternPrefixed, "app-", alice, Wildcard, OpWrite, PermissionAllow)},
			req: request{principal: alice, host: h1, op: OpWrite, rt: ResourceTransactionalID, name: "app-1"}, want: true},
		{name: "ANY operation is never granted", acls: []metadata.ACL{allowTopic("t", alice, OpAll)}, req: topicReq(OpAny, "t"), want: false},
		{name: "ANY resource type is never granted", cfg: Config{AllowIfNoACL: true}, req: request{principal: alice, host: h1, op: OpRead, rt: ResourceAny, name: "t"}, want: false},
		{name: "out of range resource type", cfg: Config{AllowIfNoACL: true}, req: request{principal: alice, host: h1, op: OpRead, rt: 99, name: "t"}, want: false},
		{name: "super user even for odd requests", cfg: Config{SuperUsers: []string{alice}}, req: request{principal: alice, host: h1, op: OpAny, rt: ResourceAny, name: "t"}, want: true},
		{name: "empty resource name", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpRead)}, req: topicReq(OpRead, ""), want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			a.Update(tc.acls)
			r := tc.req
			if got := a.Authorize(r.principal, r.host, r.op, r.rt, r.name); got != tc.want {
				t.Fatalf("Authorize(%+v) = %v, want %v", r, got, tc.want)
			}
			// The reference evaluates the rules directly over the bindings.
			if ref := refAuthorize(tc.cfg, tc.acls, r); ref != tc.want {
				t.Fatalf("reference Authorize(%+v) = %v, want %v (the table or the reference is wrong)", r, ref, tc.want)
			}
		})
	}
}

func TestUpdateReplaces(t *testing.T) {
	a := New(Config{})
	a.Update([]metadata.ACL{allowTopic("t", alice, OpRead)})
	if !a.Authorize(alice, h1, OpRead, ResourceTopic, "t") {
		t.Fatal("first set: want allowed")
	}
	a.Update([]metadata.ACL{allowTopic("u", alice, OpRead)})
	if a.Authorize(alice, h1, OpRead, ResourceTopic, "t") {
		t.Fatal("second set: binding on t should be gone")
	}
	if !a.Authorize(alice, h1, OpRead, ResourceTopic, "u") {
		t.Fatal("second set: want allowed on u")
	}
	a.Update(nil)
	if a.Authorize(alice, h1, OpRead, ResourceTopic, "u") {
		t.Fatal("empty set: want denied")
	}
}

func TestUpdateDoesNotKeepCallerSlice(t *testing.T) {
	acls := []metadata.ACL{allowTopic("t", alice, OpRead)}
	a := New(Config{})
	a.Update(acls)
	acls[0].Permission = PermissionDeny
	acls[0].ResourceName = "u"
	if !a.Authorize(alice, h1, OpRead, ResourceTopic, "t") || !a.AuthorizeAny(alice, h1, OpRead, ResourceTopic) {
		t.Fatal("changing the caller's slice after Update changed the authorizer")
	}
}

func TestOps(t *testing.T) {
	topicAll := SupportedOps(ResourceTopic)
	ops := func(list ...int8) int32 { return int32(bits(list...)) }
	tests := []struct {
		name string
		cfg  Config
		acls []metadata.ACL
		rt   int8
		res  string
		want int32
	}{
		{name: "nothing", rt: ResourceTopic, res: "t", want: 0},
		{name: "allow-if-no-acl gives every supported op", cfg: Config{AllowIfNoACL: true}, rt: ResourceTopic, res: "t", want: topicAll},
		{name: "super user gives every supported op", cfg: Config{SuperUsers: []string{alice}}, acls: []metadata.ACL{denyTopic("t", alice, OpAll)}, rt: ResourceTopic, res: "t", want: topicAll},
		{name: "READ with implied DESCRIBE", acls: []metadata.ACL{allowTopic("t", alice, OpRead)}, rt: ResourceTopic, res: "t", want: ops(OpRead, OpDescribe)},
		{name: "ALL minus denied WRITE", acls: []metadata.ACL{allowTopic("t", alice, OpAll), denyPrefix("t", alice, OpWrite)}, rt: ResourceTopic, res: "t",
			want: topicAll &^ ops(OpWrite)},
		{name: "ALTER_CONFIGS implies DESCRIBE_CONFIGS", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpAlterConfigs)}, rt: ResourceTopic, res: "t", want: ops(OpAlterConfigs, OpDescribeConfigs)},
		{name: "group ops are limited to READ DESCRIBE DELETE", acls: []metadata.ACL{bind(ResourceGroup, PatternLiteral, "g", alice, Wildcard, OpAll, PermissionAllow)}, rt: ResourceGroup, res: "g",
			want: ops(OpRead, OpDescribe, OpDelete)},
		{name: "cluster ALL", acls: []metadata.ACL{bind(ResourceCluster, PatternLiteral, ClusterName, alice, Wildcard, OpAll, PermissionAllow)}, rt: ResourceCluster, res: ClusterName,
			want: ops(OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs, OpIdempotentWrite, OpAlter, OpDescribe)},
		{name: "transactional id ALL", acls: []metadata.ACL{bind(ResourceTransactionalID, PatternLiteral, Wildcard, alice, Wildcard, OpAll, PermissionAllow)}, rt: ResourceTransactionalID, res: "x",
			want: ops(OpDescribe, OpWrite)},
		{name: "unsupported op is not reported but implies DESCRIBE", acls: []metadata.ACL{bind(ResourceGroup, PatternLiteral, "g", alice, Wildcard, OpWrite, PermissionAllow)}, rt: ResourceGroup, res: "g", want: ops(OpDescribe)},
		{name: "unsupported op is not reported", acls: []metadata.ACL{bind(ResourceGroup, PatternLiteral, "g", alice, Wildcard, OpCreate, PermissionAllow)}, rt: ResourceGroup, res: "g", want: 0},
		{name: "allow-if-no-acl off once the resource has acls", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{allowTopic("t", bob, OpRead)}, rt: ResourceTopic, res: "t", want: 0},
		{name: "ANY type", cfg: Config{AllowIfNoACL: true, SuperUsers: []string{alice}}, rt: ResourceAny, res: "t", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			a.Update(tc.acls)
			if got := a.Ops(alice, h1, tc.rt, tc.res); got != tc.want {
				t.Fatalf("Ops = %#x, want %#x", got, tc.want)
			}
			if ref := refOps(tc.cfg, tc.acls, alice, h1, tc.rt, tc.res); ref != tc.want {
				t.Fatalf("reference Ops = %#x, want %#x", ref, tc.want)
			}
		})
	}
}

func TestSupportedOps(t *testing.T) {
	// authorized_operations values clients decode; pinned to Kafka's lists.
	want := map[int8]int32{
		ResourceTopic:           1<<OpRead | 1<<OpWrite | 1<<OpCreate | 1<<OpDelete | 1<<OpAlter | 1<<OpDescribe | 1<<OpDescribeConfigs | 1<<OpAlterConfigs,
		ResourceGroup:           1<<OpRead | 1<<OpDescribe | 1<<OpDelete,
		ResourceCluster:         1<<OpCreate | 1<<OpClusterAction | 1<<OpDescribeConfigs | 1<<OpAlterConfigs | 1<<OpIdempotentWrite | 1<<OpAlter | 1<<OpDescribe,
		ResourceTransactionalID: 1<<OpDescribe | 1<<OpWrite,
		ResourceDelegationToken: 1 << OpDescribe,
		ResourceUser:            1<<OpCreateTokens | 1<<OpDescribeTokens,
		ResourceAny:             0,
		ResourceUnknown:         0,
	}
	for rt, w := range want {
		if got := SupportedOps(rt); got != w {
			t.Errorf("SupportedOps(%s) = %#b, want %#b", ResourceTypeName(rt), got, w)
		}
	}
}

func TestAuthorizeAny(t *testing.T) {
	withHost := func(b metadata.ACL, host string) metadata.ACL { b.Host = host; return b }
	txn := func(pat int8, name, principal string, op, perm int8) metadata.ACL {
		return bind(ResourceTransactionalID, pat, name, principal, Wildcard, op, perm)
	}
	tests := []struct {
		name string
		cfg  Config
		acls []metadata.ACL
		op   int8
		rt   int8
		want bool
	}{
		{name: "no acls", op: OpWrite, rt: ResourceTopic, want: false},
		{name: "no acls with allow-if-no-acl", cfg: Config{AllowIfNoACL: true}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "super user despite wildcard deny", cfg: Config{SuperUsers: []string{alice}}, acls: []metadata.ACL{denyTopic(Wildcard, alice, OpAll)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "literal allow", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "literal allow other op", acls: []metadata.ACL{allowTopic("t1", alice, OpRead)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "literal allow ALL", acls: []metadata.ACL{allowTopic("t1", alice, OpAll)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "other resource type", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite)}, op: OpWrite, rt: ResourceGroup, want: false},
		{name: "literal allow shadowed by literal deny", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyTopic("t1", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "literal allow shadowed by deny ALL", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyTopic("t1", alice, OpAll)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "literal allow shadowed by prefix deny", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyPrefix("t", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "literal allow and an unrelated deny", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyTopic("t2", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "one of two literal allows shadowed", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), allowTopic("u1", alice, OpWrite), denyPrefix("t", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "prefix allow not shadowed by literal deny", acls: []metadata.ACL{allowPrefix("t", alice, OpWrite), denyTopic("t", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "prefix allow shadowed by shorter prefix deny", acls: []metadata.ACL{allowPrefix("t1", alice, OpWrite), denyPrefix("t", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "prefix allow shadowed by equal prefix deny", acls: []metadata.ACL{allowPrefix("t1", alice, OpWrite), denyPrefix("t1", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "prefix allow not shadowed by longer prefix deny", acls: []metadata.ACL{allowPrefix("t", alice, OpWrite), denyPrefix("t1", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "wildcard allow beats prefix deny", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpWrite), denyPrefix("t", alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "wildcard deny beats everything", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpWrite), allowTopic("t1", alice, OpWrite), denyTopic(Wildcard, alice, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "wildcard deny of wildcard principal", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyTopic(Wildcard, WildcardPrincipal, OpAll)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "deny of other principal ignored", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), denyTopic(Wildcard, bob, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "deny of other host ignored", acls: []metadata.ACL{allowTopic("t1", alice, OpWrite), withHost(denyTopic(Wildcard, alice, OpWrite), h2)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "allow of other principal", acls: []metadata.ACL{allowTopic("t1", bob, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "allow of wildcard principal", acls: []metadata.ACL{allowTopic("t1", WildcardPrincipal, OpWrite)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "allow on other host", acls: []metadata.ACL{withHost(allowTopic("t1", alice, OpWrite), h2)}, op: OpWrite, rt: ResourceTopic, want: false},
		{name: "allow on own host", acls: []metadata.ACL{withHost(allowTopic("t1", alice, OpWrite), h1)}, op: OpWrite, rt: ResourceTopic, want: true},
		{name: "implied operations do not count", acls: []metadata.ACL{allowTopic("t1", alice, OpRead)}, op: OpDescribe, rt: ResourceTopic, want: false},
		{name: "transactional id prefix (KIP-679)", acls: []metadata.ACL{txn(PatternPrefixed, "app-", alice, OpWrite, PermissionAllow)}, op: OpWrite, rt: ResourceTransactionalID, want: true},
		{name: "allow-if-no-acl with acls of others elsewhere", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{txn(PatternLiteral, "x", bob, OpWrite, PermissionAllow)}, op: OpWrite, rt: ResourceTransactionalID, want: true},
		{name: "allow-if-no-acl but a wildcard binding covers every name", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{txn(PatternLiteral, Wildcard, bob, OpWrite, PermissionAllow)}, op: OpWrite, rt: ResourceTransactionalID, want: false},
		// Kafka probes the name "hardcode" for the no-ACL rule; a DENY whose
		// prefix covers it makes the probe fail as it does in Kafka.
		{name: "allow-if-no-acl and a deny covering Kafka's probe name", cfg: Config{AllowIfNoACL: true}, acls: []metadata.ACL{txn(PatternPrefixed, "h", alice, OpWrite, PermissionDeny)}, op: OpWrite, rt: ResourceTransactionalID, want: false},
		{name: "ANY op", acls: []metadata.ACL{allowTopic(Wildcard, alice, OpAll)}, op: OpAny, rt: ResourceTopic, want: false},
		{name: "ANY type", cfg: Config{AllowIfNoACL: true}, op: OpWrite, rt: ResourceAny, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := New(tc.cfg)
			a.Update(tc.acls)
			if got := a.AuthorizeAny(alice, h1, tc.op, tc.rt); got != tc.want {
				t.Fatalf("AuthorizeAny = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestConcurrentUpdate runs readers against a stream of Updates. Every set
// published grants READ and WRITE on "t" together or neither, from
// different bindings (a literal and a prefix), so a reader that saw a
// partly built set would see one without the other. Run it with -race.
func TestConcurrentUpdate(t *testing.T) {
	a := New(Config{})
	on := []metadata.ACL{allowTopic("t", alice, OpRead), allowPrefix("t", alice, OpWrite), allowTopic("filler", bob, OpRead)}
	off := []metadata.ACL{allowTopic("t", bob, OpRead), allowPrefix("t", bob, OpWrite)}
	const readers, rounds = 4, 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan string, readers)
	for range readers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ops := a.Ops(alice, h1, ResourceTopic, "t")
				r, w := ops&(1<<OpRead) != 0, ops&(1<<OpWrite) != 0
				if r != w {
					errs <- fmt.Sprintf("saw a partial set: ops %#x", ops)
					return
				}
				_ = a.Authorize(alice, h1, OpRead, ResourceTopic, "t")
				_ = a.AuthorizeAny(alice, h1, OpWrite, ResourceTopic)
			}
		})
	}
	for i := range rounds {
		if i%2 == 0 {
			a.Update(on)
		} else {
			a.Update(off)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestAuthorizeDoesNotAllocate(t *testing.T) {
	a := New(Config{SuperUsers: []string{"User:admin"}})
	var acls []metadata.ACL
	for i := range 100 {
		acls = append(acls, allowTopic(fmt.Sprintf("topic-%d", i), alice, OpRead))
		acls = append(acls, allowPrefix(fmt.Sprintf("team-%d-", i), bob, OpWrite))
	}
	acls = append(acls, allowTopic(Wildcard, WildcardPrincipal, OpDescribe), denyTopic("topic-7", bob, OpAll))
	a.Update(acls)
	name := "topic-42" // not a constant, so the compiler cannot fold anything
	cases := []struct {
		name string
		fn   func()
	}{
		{"literal hit", func() { _ = a.Authorize(alice, h1, OpRead, ResourceTopic, name) }},
		{"prefix hit", func() { _ = a.Authorize(bob, h1, OpWrite, ResourceTopic, "team-42-x") }},
		{"miss", func() { _ = a.Authorize(bob, h1, OpRead, ResourceTopic, name) }},
		{"super user", func() { _ = a.Authorize("User:admin", h1, OpRead, ResourceTopic, name) }},
		{"ops", func() { _ = a.Ops(alice, h1, ResourceTopic, name) }},
	}
	for _, c := range cases {
		if n := testing.AllocsPerRun(200, c.fn); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", c.name, n)
		}
	}
	if !a.Authorize(alice, h1, OpRead, ResourceTopic, name) || !a.Authorize(bob, h1, OpWrite, ResourceTopic, "team-42-x") {
		t.Fatal("expected hits")
	}
}

// TestAgainstReference compares the index with the reference evaluation
// over random small sets built from colliding names, principals and hosts.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		data := make([]byte, 4+rng.IntN(60))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		checkAgainstReference(t, data)
	}
}

func FuzzAuthorize(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 3, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
	f.Add([]byte{2, 8, 3, 3, 4, 1, 0, 0, 4, 3, 1, 2, 0, 3, 2, 2, 3, 0, 5, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		checkAgainstReference(t, data)
	})
}

var (
	fuzzNames      = []string{"", "*", "a", "ab", "abc", "b", "*a", "hardcode", "h"}
	fuzzPrincipals = []string{alice, bob, WildcardPrincipal, "Group:alice"}
	fuzzHosts      = []string{Wildcard, h1, h2}
)

// checkAgainstReference decodes a config, a binding set and requests from
// data and checks Authorize and Ops against the reference.
func checkAgainstReference(t *testing.T, data []byte) {
	pick := func(list []string, b byte) string { return list[int(b)%len(list)] }
	cfg := Config{AllowIfNoACL: data[0]&1 != 0}
	if data[0]&2 != 0 {
		cfg.SuperUsers = []string{bob}
	}
	n := int(data[1]) % 8
	rest := data[2:]
	var acls []metadata.ACL
	for i := 0; i < n && len(rest) >= 7; i++ {
		acls = append(acls, metadata.ACL{
			ResourceType: int8(rest[0]%3) + ResourceTopic, // TOPIC, GROUP, CLUSTER
			PatternType:  int8(rest[1] % 5),               // invalid ones included
			ResourceName: pick(fuzzNames, rest[2]),
			Principal:    pick(fuzzPrincipals, rest[3]),
			Host:         pick(fuzzHosts, rest[4]),
			Operation:    int8(rest[5] % 16), // UNKNOWN, ANY and out of range included
			Permission:   int8(rest[6] % 4),
		})
		rest = rest[7:]
	}
	a := New(cfg)
	a.Update(acls)
	for len(rest) >= 4 {
		r := request{
			principal: pick(fuzzPrincipals, rest[0]),
			host:      pick(fuzzHosts[1:], rest[1]),
			rt:        int8(rest[2]%3) + ResourceTopic,
			op:        int8(rest[2]/3%13) + OpAll,
			name:      pick(fuzzNames, rest[3]),
		}
		rest = rest[4:]
		if got, want := a.Authorize(r.principal, r.host, r.op, r.rt, r.name), refAuthorize(cfg, acls, r); got != want {
			t.Fatalf("Authorize(%+v) = %v, reference %v; cfg %+v acls %+v", r, got, want, cfg, acls)
		}
		if got, want := a.Ops(r.principal, r.host, r.rt, r.name), refOps(cfg, acls, r.principal, r.host, r.rt, r.name); got != want {
			t.Fatalf("Ops(%+v) = %#x, reference %#x; cfg %+v acls %+v", r, got, want, cfg, acls)
		}
	}
}

// refAuthorize is Kafka's StandardAuthorizer rule evaluated naively over
// every binding. The bindings that apply to the resource are found with a
// MATCH filter, whose semantics Kafka defines as exactly that.
func refAuthorize(cfg Config, acls []metadata.ACL, r request) bool {
	for _, u := range cfg.SuperUsers {
		if len(u) > 0 && trimmed(u) == r.principal {
			return true
		}
	}
	if r.rt < ResourceTopic || r.rt > ResourceUser || r.op < OpAll || r.op > OpDescribeTokens {
		return false
	}
	name := r.name
	resource := Filter{ResourceType: r.rt, ResourceName: &name, PatternType: PatternMatch, Operation: OpAny, Permission: PermissionAny}
	found, allowed := false, false
	for _, b := range acls {
		if !resource.Matches(b) {
			continue
		}
		found = true
		if b.Principal != r.principal && b.Principal != WildcardPrincipal {
			continue
		}
		if b.Host != Wildcard && b.Host != r.host {
			continue
		}
		if b.Operation != OpAll {
			if b.Permission == PermissionAllow {
				switch r.op {
				case OpDescribe:
					if b.Operation != OpDescribe && b.Operation != OpRead && b.Operation != OpWrite && b.Operation != OpDelete && b.Operation != OpAlter {
						continue
					}
				case OpDescribeConfigs:
					if b.Operation != OpDescribeConfigs && b.Operation != OpAlterConfigs {
						continue
					}
				default:
					if b.Operation != r.op {
						continue
					}
				}
			} else if b.Operation != r.op {
				continue
			}
		}
		switch b.Permission {
		case PermissionDeny:
			return false
		case PermissionAllow:
			allowed = true
		}
	}
	return allowed || (!found && cfg.AllowIfNoACL)
}

func refOps(cfg Config, acls []metadata.ACL, principal, host string, rt int8, name string) int32 {
	var m int32
	for op := OpAll; op <= OpDescribeTokens; op++ {
		if SupportedOps(rt)&(1<<op) != 0 && refAuthorize(cfg, acls, request{principal: principal, host: host, op: op, rt: rt, name: name}) {
			m |= 1 << op
		}
	}
	return m
}

func trimmed(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

// benchACLs is a 10,000-binding set shaped like a multi-tenant cluster:
// per-tenant literal topics and groups, per-tenant prefixes of several
// lengths, and a few wildcard bindings.
func benchACLs() []metadata.ACL {
	var acls []metadata.ACL
	for i := range 5000 {
		acls = append(acls, allowTopic(fmt.Sprintf("tenant-%d.orders-%d", i%200, i), fmt.Sprintf("User:u%d", i%200), OpRead))
	}
	for i := range 3000 {
		acls = append(acls, allowPrefix(fmt.Sprintf("tenant-%d.%s", i%200, string(rune('a'+i%26))), fmt.Sprintf("User:u%d", i%200), OpWrite))
	}
	for i := range 1990 {
		acls = append(acls, bind(ResourceGroup, PatternLiteral, fmt.Sprintf("g-%d", i), fmt.Sprintf("User:u%d", i%200), Wildcard, OpRead, PermissionAllow))
	}
	for i := range 10 {
		acls = append(acls, allowTopic(Wildcard, fmt.Sprintf("User:ops%d", i), OpDescribe))
	}
	return acls
}

func BenchmarkAuthorize(b *testing.B) {
	a := New(Config{SuperUsers: []string{"User:admin"}})
	acls := benchACLs()
	if len(acls) != 10000 {
		b.Fatalf("%d bindings", len(acls))
	}
	a.Update(acls)
	bench := []struct {
		name, principal, res string
		op                   int8
		want                 bool
	}{
		{"literal", "User:u42", "tenant-42.orders-242", OpRead, true},
		{"prefix", "User:u42", "tenant-42.c-payments", OpWrite, true},
		{"miss", "User:u43", "tenant-42.orders-242", OpRead, false},
		{"wildcard", "User:ops3", "tenant-42.orders-242", OpDescribe, true},
		{"super", "User:admin", "x", OpAlter, true},
	}
	for _, c := range bench {
		if got := a.Authorize(c.principal, h1, c.op, ResourceTopic, c.res); got != c.want {
			b.Fatalf("%s: got %v", c.name, got)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Authorize(c.principal, h1, c.op, ResourceTopic, c.res)
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				a.Authorize("User:u42", h1, OpRead, ResourceTopic, "tenant-42.orders-242")
			}
		})
	})
}

func BenchmarkUpdate(b *testing.B) {
	a := New(Config{})
	acls := benchACLs()
	b.ReportAllocs()
	for b.Loop() {
		a.Update(acls)
	}
}
