package broker

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

const (
	resAny, resTopic, resGroup, resCluster = 1, 2, 3, 4
	patAny, patMatch, patLiteral, patPref  = 1, 2, 3, 4
	opAny, opAll, opRead, opWrite, opDescr = 1, 2, 3, 4, 8
	permAny, permDeny, permAllow           = 1, 2, 3
)

func binding(typ int8, name string, pat int8, principal, host string, op, perm int8) metadata.ACL {
	return metadata.ACL{ResourceType: typ, ResourceName: name, PatternType: pat, Principal: principal, Host: host, Operation: op, Permission: perm}
}

func creation(b metadata.ACL) kmsg.CreateACLsRequestCreation {
	c := kmsg.NewCreateACLsRequestCreation()
	c.ResourceType, c.ResourceName, c.ResourcePatternType = kmsg.ACLResourceType(b.ResourceType), b.ResourceName, kmsg.ACLResourcePatternType(b.PatternType)
	c.Principal, c.Host = b.Principal, b.Host
	c.Operation, c.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
	return c
}

func createACLs(t *testing.T, rc *rawConn, version int16, bs ...metadata.ACL) *kmsg.CreateACLsResponse {
	t.Helper()
	req := kmsg.NewPtrCreateACLsRequest()
	req.Version = version
	for _, b := range bs {
		req.Creations = append(req.Creations, creation(b))
	}
	return rc.do(req).(*kmsg.CreateACLsResponse)
}

// aclFilter is a test filter; empty strings mean null (match anything).
type aclFilter struct {
	typ             int8
	name            string
	pat             int8
	principal, host string
	op, perm        int8
}

func strOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return kmsg.StringPtr(s)
}

func (f aclFilter) describe(version int16) *kmsg.DescribeACLsRequest {
	req := kmsg.NewPtrDescribeACLsRequest()
	req.Version = version
	req.ResourceType, req.ResourceName = kmsg.ACLResourceType(f.typ), strOrNull(f.name)
	if version >= 1 {
		req.ResourcePatternType = kmsg.ACLResourcePatternType(f.pat)
	}
	req.Principal, req.Host = strOrNull(f.principal), strOrNull(f.host)
	req.Operation, req.PermissionType = kmsg.ACLOperation(f.op), kmsg.ACLPermissionType(f.perm)
	return req
}

func (f aclFilter) deleteFilter() kmsg.DeleteACLsRequestFilter {
	d := kmsg.NewDeleteACLsRequestFilter()
	d.ResourceType, d.ResourceName, d.ResourcePatternType = kmsg.ACLResourceType(f.typ), strOrNull(f.name), kmsg.ACLResourcePatternType(f.pat)
	d.Principal, d.Host = strOrNull(f.principal), strOrNull(f.host)
	d.Operation, d.PermissionType = kmsg.ACLOperation(f.op), kmsg.ACLPermissionType(f.perm)
	return d
}

var matchAll = aclFilter{typ: resAny, pat: patAny, op: opAny, perm: permAny}

// describedBindings flattens a DescribeAcls answer, checking that every
// resource pattern appears once (Kafka groups by pattern).
func describedBindings(t *testing.T, resp *kmsg.DescribeACLsResponse) []metadata.ACL {
	t.Helper()
	if resp.ErrorCode != 0 {
		t.Fatalf("DescribeAcls: %v %v", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
	}
	var out []metadata.ACL
	seen := map[string]bool{}
	for _, r := range resp.Resources {
		key := fmt.Sprint(r.ResourceType, r.ResourceName, r.ResourcePatternType)
		if seen[key] {
			t.Errorf("resource pattern %s listed twice", key)
		}
		seen[key] = true
		for _, a := range r.ACLs {
			out = append(out, binding(int8(r.ResourceType), r.ResourceName, int8(r.ResourcePatternType), a.Principal, a.Host, int8(a.Operation), int8(a.PermissionType)))
		}
	}
	return sortedACLs(out)
}

func sortedACLs(bs []metadata.ACL) []metadata.ACL {
	bs = slices.Clone(bs)
	slices.SortFunc(bs, func(a, b metadata.ACL) int {
		return cmpStrings(fmt.Sprint(a), fmt.Sprint(b))
	})
	return bs
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestACLsSecurityDisabled(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)
	b := binding(resTopic, "t", patLiteral, "User:bob", "*", opRead, permAllow)
	for v := int16(0); v <= 3; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			cr := createACLs(t, rc, v, b)
			if len(cr.Results) != 1 || cr.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
				t.Errorf("CreateAcls = %+v, want SECURITY_DISABLED", cr.Results)
			}
			dr := rc.do(matchAll.describe(v)).(*kmsg.DescribeACLsResponse)
			if dr.ErrorCode != kerr.SecurityDisabled.Code {
				t.Errorf("DescribeAcls error %d, want SECURITY_DISABLED", dr.ErrorCode)
			}
			del := kmsg.NewPtrDeleteACLsRequest()
			del.Version = v
			del.Filters = append(del.Filters, matchAll.deleteFilter())
			xr := rc.do(del).(*kmsg.DeleteACLsResponse)
			if len(xr.Results) != 1 || xr.Results[0].ErrorCode != kerr.SecurityDisabled.Code {
				t.Errorf("DeleteAcls = %+v, want SECURITY_DISABLED", xr.Results)
			}
		})
	}
	if got := ts.meta.ACLs(); len(got) != 0 {
		t.Errorf("ACLs stored without an authorizer: %v", got)
	}
	// Refused changes are audited too.
	if got := capt.lines(t, "CreateAcls"); len(got) != 4 || got[0]["outcome"] != "SECURITY_DISABLED" {
		t.Errorf("CreateAcls audit lines = %v, want 4 with outcome SECURITY_DISABLED", got)
	}
}

func TestACLsClusterAuthorizationFailed(t *testing.T) {
	ts, capt := secServer(t, true, false) // anonymous holds no ACL
	rc := ts.raw(t)
	b := binding(resTopic, "t", patLiteral, "User:ANONYMOUS", "*", opAll, permAllow)
	cr := createACLs(t, rc, 3, b, b)
	for _, r := range cr.Results {
		if r.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
			t.Errorf("CreateAcls result %d, want CLUSTER_AUTHORIZATION_FAILED", r.ErrorCode)
		}
	}
	if len(cr.Results) != 2 {
		t.Errorf("%d CreateAcls results, want 2", len(cr.Results))
	}
	if dr := rc.do(matchAll.describe(3)).(*kmsg.DescribeACLsResponse); dr.ErrorCode != kerr.ClusterAuthorizationFailed.Code || len(dr.Resources) != 0 {
		t.Errorf("DescribeAcls = %d %v, want CLUSTER_AUTHORIZATION_FAILED and nothing", dr.ErrorCode, dr.Resources)
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	del.Filters = append(del.Filters, matchAll.deleteFilter())
	if xr := rc.do(del).(*kmsg.DeleteACLsResponse); len(xr.Results) != 1 || xr.Results[0].ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("DeleteAcls = %+v, want CLUSTER_AUTHORIZATION_FAILED", xr.Results)
	}
	if got := ts.meta.ACLs(); len(got) != 0 {
		t.Errorf("unauthorized CreateAcls stored %v", got)
	}
	lines := capt.lines(t, "")
	if len(lines) != 3 { // two creations, one delete filter
		t.Fatalf("%d audit lines, want 3: %v", len(lines), lines)
	}
	for _, l := range lines {
		if l["outcome"] != "CLUSTER_AUTHORIZATION_FAILED" || l["principal"] != anonymousPrincipal || l["client_host"] != "127.0.0.1" {
			t.Errorf("audit line %v, want principal, host and CLUSTER_AUTHORIZATION_FAILED", l)
		}
	}
}

// aclFixture is a set of bindings exercising literal, prefixed and
// wildcard patterns.
var aclFixture = []metadata.ACL{
	binding(resTopic, "orders-eu", patLiteral, "User:bob", "*", opRead, permAllow),
	binding(resTopic, "orders-", patPref, "User:bob", "*", opWrite, permAllow),
	binding(resTopic, "*", patLiteral, "User:carol", "*", opDescr, permAllow),
	binding(resGroup, "g1", patLiteral, "User:bob", "*", opRead, permAllow),
	binding(resTopic, "orders-eu", patLiteral, "User:dave", "10.0.0.1", opRead, permDeny),
	binding(resTopic, "payments", patLiteral, "User:bob", "*", opRead, permAllow),
	binding(resCluster, "kafka-cluster", patLiteral, "User:ops", "*", opAll, permAllow),
}

func TestACLsCreateDescribe(t *testing.T) {
	ts, capt := secServer(t, true, true)
	rc := ts.raw(t)
	cr := createACLs(t, rc, 3, aclFixture...)
	for i, r := range cr.Results {
		if r.ErrorCode != 0 {
			t.Fatalf("creation %d: %v %v", i, kerr.ErrorForCode(r.ErrorCode), r.ErrorMessage)
		}
	}
	if got := capt.lines(t, "CreateAcls"); len(got) != len(aclFixture) {
		t.Errorf("%d CreateAcls audit lines, want %d", len(got), len(aclFixture))
	} else if acl, _ := got[0]["acl"].(map[string]any); got[0]["outcome"] != "ok" || acl["resource_name"] != "orders-eu" ||
		acl["principal"] != "User:bob" || acl["operation"] != "READ" || acl["pattern_type"] != "LITERAL" {
		t.Errorf("first audit line %v", got[0])
	}
	// Creating the same binding again is fine and changes nothing.
	if cr := createACLs(t, rc, 3, aclFixture[0]); cr.Results[0].ErrorCode != 0 {
		t.Errorf("re-creating a binding: %v", kerr.ErrorForCode(cr.Results[0].ErrorCode))
	}

	fx := aclFixture
	for _, tc := range []struct {
		name    string
		version int16
		f       aclFilter
		want    []metadata.ACL
	}{
		{"everything", 3, matchAll, fx},
		{"literal name", 1, aclFilter{typ: resTopic, name: "orders-eu", pat: patLiteral, op: opAny, perm: permAny}, []metadata.ACL{fx[0], fx[4]}},
		{"prefixed", 2, aclFilter{typ: resTopic, name: "orders-", pat: patPref, op: opAny, perm: permAny}, []metadata.ACL{fx[1]}},
		{"match takes literal, wildcard and prefixes", 3, aclFilter{typ: resTopic, name: "orders-eu", pat: patMatch, op: opAny, perm: permAny}, []metadata.ACL{fx[0], fx[1], fx[2], fx[4]}},
		{"any pattern of a name", 3, aclFilter{typ: resTopic, name: "orders-", pat: patAny, op: opAny, perm: permAny}, []metadata.ACL{fx[1]}},
		{"principal", 3, aclFilter{typ: resAny, pat: patAny, principal: "User:bob", op: opAny, perm: permAny}, []metadata.ACL{fx[0], fx[1], fx[3], fx[5]}},
		{"host and permission", 3, aclFilter{typ: resAny, pat: patAny, host: "10.0.0.1", op: opAny, perm: permDeny}, []metadata.ACL{fx[4]}},
		{"operation", 3, aclFilter{typ: resAny, pat: patAny, op: opWrite, perm: permAny}, []metadata.ACL{fx[1]}},
		{"resource type", 3, aclFilter{typ: resGroup, pat: patAny, op: opAny, perm: permAny}, []metadata.ACL{fx[3]}},
		{"nothing", 3, aclFilter{typ: resTopic, name: "nope", pat: patLiteral, op: opAny, perm: permAny}, nil},
		// v0 has no pattern type: it means LITERAL, so prefixed bindings stay hidden.
		{"v0 sees literal only", 0, aclFilter{typ: resTopic, op: opAny, perm: permAny}, []metadata.ACL{fx[0], fx[2], fx[4], fx[5]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := rc.do(tc.f.describe(tc.version)).(*kmsg.DescribeACLsResponse)
			got, want := describedBindings(t, resp), sortedACLs(tc.want)
			if !slices.Equal(got, want) {
				t.Errorf("described\n%v\nwant\n%v", got, want)
			}
		})
	}

	t.Run("grouped by pattern", func(t *testing.T) {
		resp := rc.do(matchAll.describe(3)).(*kmsg.DescribeACLsResponse)
		if len(resp.Resources) != len(fx)-1 { // orders-eu LITERAL holds two
			t.Errorf("%d resources, want %d", len(resp.Resources), len(fx)-1)
		}
	})
}

func TestACLsCreateV0IsLiteral(t *testing.T) {
	ts, _ := secServer(t, true, true)
	rc := ts.raw(t)
	b := binding(resTopic, "t", patLiteral, "User:bob", "*", opRead, permAllow)
	if cr := createACLs(t, rc, 0, b); cr.Results[0].ErrorCode != 0 {
		t.Fatalf("CreateAcls v0: %v", kerr.ErrorForCode(cr.Results[0].ErrorCode))
	}
	if got := ts.meta.ACLs(); !slices.Equal(got, []metadata.ACL{b}) {
		t.Errorf("stored %v, want %v", got, b)
	}
}

func TestACLsCreateValidation(t *testing.T) {
	ts, capt := secServer(t, true, true)
	rc := ts.raw(t)
	good := binding(resTopic, "ok", patLiteral, "User:bob", "*", opRead, permAllow)
	bad := map[string]metadata.ACL{
		"resource type ANY":               binding(resAny, "t", patLiteral, "User:bob", "*", opRead, permAllow),
		"resource type UNKNOWN":           binding(0, "t", patLiteral, "User:bob", "*", opRead, permAllow),
		"pattern MATCH":                   binding(resTopic, "t", patMatch, "User:bob", "*", opRead, permAllow),
		"pattern ANY":                     binding(resTopic, "t", patAny, "User:bob", "*", opRead, permAllow),
		"operation ANY":                   binding(resTopic, "t", patLiteral, "User:bob", "*", opAny, permAllow),
		"permission ANY":                  binding(resTopic, "t", patLiteral, "User:bob", "*", opRead, permAny),
		"empty resource name":             binding(resTopic, "", patLiteral, "User:bob", "*", opRead, permAllow),
		"cluster not named kafka-cluster": binding(resCluster, "mine", patLiteral, "User:bob", "*", opAll, permAllow),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			cr := createACLs(t, rc, 3, b, good)
			if got := cr.Results[0]; got.ErrorCode != kerr.InvalidRequest.Code || got.ErrorMessage == nil || *got.ErrorMessage == "" {
				t.Errorf("invalid creation: %d %v, want INVALID_REQUEST with a reason", got.ErrorCode, got.ErrorMessage)
			}
			if got := cr.Results[1]; got.ErrorCode != 0 {
				t.Errorf("valid creation beside it: %v", kerr.ErrorForCode(got.ErrorCode))
			}
		})
	}
	if got := ts.meta.ACLs(); !slices.Equal(got, []metadata.ACL{good}) {
		t.Errorf("stored %v, want only %v", got, good)
	}
	var refused int
	for _, l := range capt.lines(t, "CreateAcls") {
		if l["outcome"] == "INVALID_REQUEST" {
			refused++
			if l["error"] == nil {
				t.Errorf("refused audit line without the reason: %v", l)
			}
		}
	}
	if refused != len(bad) {
		t.Errorf("%d refused creations audited, want %d", refused, len(bad))
	}
}

func TestACLsDelete(t *testing.T) {
	ts, capt := secServer(t, true, true)
	rc := ts.raw(t)
	createACLs(t, rc, 3, aclFixture...)
	fx := aclFixture

	del := kmsg.NewPtrDeleteACLsRequest()
	del.Version = 3
	filters := []aclFilter{
		{typ: resTopic, name: "orders-eu", pat: patLiteral, principal: "User:bob", op: opAny, perm: permAny},
		{typ: resTopic, name: "orders-", pat: patPref, op: opAny, perm: permAny},
		{typ: resTopic, name: "payments", pat: patMatch, op: opAny, perm: permAny}, // payments + the "*" wildcard
		{typ: resGroup, pat: patAny, principal: "User:nobody", op: opAny, perm: permAny},
		{typ: resTopic, name: "x", pat: 0, op: opAny, perm: permAny}, // UNKNOWN pattern type
	}
	for _, f := range filters {
		del.Filters = append(del.Filters, f.deleteFilter())
	}
	resp := rc.do(del).(*kmsg.DeleteACLsResponse)
	if len(resp.Results) != len(filters) {
		t.Fatalf("%d results, want %d", len(resp.Results), len(filters))
	}
	want := [][]metadata.ACL{{fx[0]}, {fx[1]}, {fx[2], fx[5]}, nil}
	for i, w := range want {
		r := resp.Results[i]
		if r.ErrorCode != 0 {
			t.Errorf("filter %d: %v", i, kerr.ErrorForCode(r.ErrorCode))
		}
		var got []metadata.ACL
		for _, m := range r.MatchingACLs {
			if m.ErrorCode != 0 {
				t.Errorf("filter %d matching acl error %d", i, m.ErrorCode)
			}
			got = append(got, binding(int8(m.ResourceType), m.ResourceName, int8(m.ResourcePatternType), m.Principal, m.Host, int8(m.Operation), int8(m.PermissionType)))
		}
		if got, w := sortedACLs(got), sortedACLs(w); !slices.Equal(got, w) {
			t.Errorf("filter %d deleted\n%v\nwant\n%v", i, got, w)
		}
	}
	if r := resp.Results[4]; r.ErrorCode != kerr.InvalidRequest.Code || len(r.MatchingACLs) != 0 {
		t.Errorf("UNKNOWN filter: %d %v, want INVALID_REQUEST", r.ErrorCode, r.MatchingACLs)
	}
	if got, w := sortedACLs(ts.meta.ACLs()), sortedACLs([]metadata.ACL{fx[3], fx[4], fx[6]}); !slices.Equal(got, w) {
		t.Errorf("left\n%v\nwant\n%v", got, w)
	}
	lines := capt.lines(t, "DeleteAcls")
	if len(lines) != len(filters) {
		t.Fatalf("%d DeleteAcls audit lines, want %d", len(lines), len(filters))
	}
	if d, _ := lines[2]["deleted"].([]any); len(d) != 2 || lines[2]["outcome"] != "ok" {
		t.Errorf("audit of the MATCH filter: %v, want two deletions", lines[2])
	}

	t.Run("overlapping filters both list a binding", func(t *testing.T) {
		del := kmsg.NewPtrDeleteACLsRequest()
		del.Filters = append(del.Filters, matchAll.deleteFilter(),
			aclFilter{typ: resGroup, name: "g1", pat: patLiteral, op: opAny, perm: permAny}.deleteFilter())
		resp := rc.do(del).(*kmsg.DeleteACLsResponse)
		if n := len(resp.Results[0].MatchingACLs); n != 3 {
			t.Errorf("match-all deleted %d, want 3", n)
		}
		if n := len(resp.Results[1].MatchingACLs); n != 1 {
			t.Errorf("group filter deleted %d, want 1", n)
		}
		if got := ts.meta.ACLs(); len(got) != 0 {
			t.Errorf("left %v", got)
		}
	})

	t.Run("v0 deletes literal only", func(t *testing.T) {
		lit := binding(resTopic, "v0", patLiteral, "User:bob", "*", opRead, permAllow)
		pre := binding(resTopic, "v0", patPref, "User:bob", "*", opRead, permAllow)
		createACLs(t, rc, 3, lit, pre)
		del := kmsg.NewPtrDeleteACLsRequest()
		del.Version = 0
		del.Filters = append(del.Filters, aclFilter{typ: resTopic, name: "v0", op: opAny, perm: permAny}.deleteFilter())
		resp := rc.do(del).(*kmsg.DeleteACLsResponse)
		if n := len(resp.Results[0].MatchingACLs); n != 1 {
			t.Errorf("v0 deleted %d, want 1", n)
		}
		if got := ts.meta.ACLs(); !slices.Equal(got, []metadata.ACL{pre}) {
			t.Errorf("left %v, want the prefixed one", got)
		}
	})
}

// TestACLsKadm runs the ACL APIs through franz-go's admin client, which
// is how most Go tooling will reach them.
func TestACLsKadm(t *testing.T) {
	ts, _ := secServer(t, true, true)
	adm := kadm.NewClient(ts.client(t))
	ctx := context.Background()

	b := kadm.NewACLs().Allow("User:alice").AllowHosts("*").Topics("logs").
		ResourcePatternType(kadm.ACLPatternPrefixed).Operations(kadm.OpRead, kadm.OpDescribe)
	created, err := adm.CreateACLs(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range created {
		if c.Err != nil {
			t.Fatalf("create %+v: %v", c, c.Err)
		}
	}
	if len(created) != 2 {
		t.Fatalf("%d created, want 2", len(created))
	}

	df := kadm.NewACLs().Topics("logs").ResourcePatternType(kadm.ACLPatternPrefixed).
		Operations(kadm.OpAny).Allow().AllowHosts()
	described, err := adm.DescribeACLs(ctx, df)
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 1 || described[0].Err != nil || len(described[0].Described) != 2 {
		t.Fatalf("described %+v, want two bindings", described)
	}
	for _, d := range described[0].Described {
		if d.Principal != "User:alice" || d.Name != "logs" || d.Pattern != kadm.ACLPatternPrefixed {
			t.Errorf("described %+v", d)
		}
	}

	deleted, err := adm.DeleteACLs(ctx, df)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0].Err != nil || len(deleted[0].Deleted) != 2 {
		t.Fatalf("deleted %+v, want two bindings", deleted)
	}
	if got := ts.meta.ACLs(); len(got) != 0 {
		t.Errorf("left %v", got)
	}
}
