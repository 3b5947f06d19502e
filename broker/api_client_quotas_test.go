package broker

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

// qe builds a wire entity from "type=name" pairs; "type" alone is the
// default entity (null name).
func qe(pairs ...string) []kmsg.AlterClientQuotasRequestEntryEntity {
	var out []kmsg.AlterClientQuotasRequestEntryEntity
	for _, p := range pairs {
		typ, name, ok := strings.Cut(p, "=")
		c := kmsg.AlterClientQuotasRequestEntryEntity{Type: typ}
		if ok {
			c.Name = kmsg.StringPtr(name)
		}
		out = append(out, c)
	}
	return out
}

func qset(key string, v float64) kmsg.AlterClientQuotasRequestEntryOp {
	return kmsg.AlterClientQuotasRequestEntryOp{Key: key, Value: v}
}

func qremove(key string) kmsg.AlterClientQuotasRequestEntryOp {
	return kmsg.AlterClientQuotasRequestEntryOp{Key: key, Remove: true}
}

func qentry(entity []kmsg.AlterClientQuotasRequestEntryEntity, ops ...kmsg.AlterClientQuotasRequestEntryOp) kmsg.AlterClientQuotasRequestEntry {
	return kmsg.AlterClientQuotasRequestEntry{Entity: entity, Ops: ops}
}

func alterQuotas(t *testing.T, rc *rawConn, validateOnly bool, entries ...kmsg.AlterClientQuotasRequestEntry) *kmsg.AlterClientQuotasResponse {
	t.Helper()
	req := kmsg.NewPtrAlterClientQuotasRequest()
	req.Version = 1
	req.Entries, req.ValidateOnly = entries, validateOnly
	resp := rc.do(req).(*kmsg.AlterClientQuotasResponse)
	if len(resp.Entries) != len(entries) {
		t.Fatalf("%d results for %d entries", len(resp.Entries), len(entries))
	}
	return resp
}

func named(n string) metadata.QuotaName { return metadata.QuotaName{Set: true, Name: n} }

var quotaDefault = metadata.QuotaName{Set: true, Default: true}

// quotaFixture covers every entity shape Kafka allows.
var quotaFixture = []kmsg.AlterClientQuotasRequestEntry{
	qentry(qe("user=alice"), qset("producer_byte_rate", 1024), qset("request_percentage", 50.5)),
	qentry(qe("user"), qset("consumer_byte_rate", 2048)),
	qentry(qe("user=alice", "client-id=app"), qset("producer_byte_rate", 512)),
	qentry(qe("client-id=app"), qset("controller_mutation_rate", 10)),
	qentry(qe("user", "client-id"), qset("producer_byte_rate", 100)),
	qentry(qe("ip=10.0.0.1"), qset("connection_creation_rate", 5)),
	qentry(qe("ip"), qset("connection_creation_rate", 100)),
}

var (
	eAlice        = metadata.QuotaEntity{User: named("alice")}
	eUserDefault  = metadata.QuotaEntity{User: quotaDefault}
	eAliceApp     = metadata.QuotaEntity{User: named("alice"), ClientID: named("app")}
	eApp          = metadata.QuotaEntity{ClientID: named("app")}
	eBothDefaults = metadata.QuotaEntity{User: quotaDefault, ClientID: quotaDefault}
	eIP           = metadata.QuotaEntity{IP: named("10.0.0.1")}
	eIPDefault    = metadata.QuotaEntity{IP: quotaDefault}
)

func TestClientQuotasAlterDescribe(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)
	resp := alterQuotas(t, rc, false, quotaFixture...)
	for i, e := range resp.Entries {
		if e.ErrorCode != 0 {
			t.Fatalf("entry %d: %v %v", i, kerr.ErrorForCode(e.ErrorCode), e.ErrorMessage)
		}
		if len(e.Entity) != len(quotaFixture[i].Entity) {
			t.Errorf("entry %d echoes entity %+v", i, e.Entity)
		}
	}
	stored := ts.meta.ClientQuotas()
	if len(stored) != len(quotaFixture) {
		t.Fatalf("stored %v", stored)
	}
	if q := stored[eAlice]; q["producer_byte_rate"] != 1024 || q["request_percentage"] != 50.5 {
		t.Errorf("alice's quotas %v", q)
	}
	lines := capt.lines(t, "AlterClientQuotas")
	if len(lines) != len(quotaFixture) {
		t.Fatalf("%d audit lines, want %d", len(lines), len(quotaFixture))
	}
	if l := lines[2]; l["entity"] != "user=alice,client-id=app" || l["outcome"] != "ok" {
		t.Errorf("audit line %v", l)
	}
	if l := lines[4]; l["entity"] != "user=<default>,client-id=<default>" {
		t.Errorf("audit line %v", l)
	}

	type comp struct {
		typ   string
		match kmsg.QuotasMatchType
		name  string // "" = null
	}
	for _, tc := range []struct {
		name   string
		comps  []comp
		strict bool
		want   []metadata.QuotaEntity
	}{
		{"no filter", nil, false, []metadata.QuotaEntity{eAlice, eUserDefault, eAliceApp, eApp, eBothDefaults, eIP, eIPDefault}},
		{"no filter strict", nil, true, nil},
		{"exact user", []comp{{"user", kmsg.QuotasMatchTypeExact, "alice"}}, false, []metadata.QuotaEntity{eAlice, eAliceApp}},
		{"exact user strict", []comp{{"user", kmsg.QuotasMatchTypeExact, "alice"}}, true, []metadata.QuotaEntity{eAlice}},
		{"default user", []comp{{"user", kmsg.QuotasMatchTypeDefault, ""}}, false, []metadata.QuotaEntity{eUserDefault, eBothDefaults}},
		{"default user strict", []comp{{"user", kmsg.QuotasMatchTypeDefault, ""}}, true, []metadata.QuotaEntity{eUserDefault}},
		{"any user", []comp{{"user", kmsg.QuotasMatchTypeAny, ""}}, false, []metadata.QuotaEntity{eAlice, eUserDefault, eAliceApp, eBothDefaults}},
		{"any user strict", []comp{{"user", kmsg.QuotasMatchTypeAny, ""}}, true, []metadata.QuotaEntity{eAlice, eUserDefault}},
		{"user and client", []comp{{"user", kmsg.QuotasMatchTypeExact, "alice"}, {"client-id", kmsg.QuotasMatchTypeExact, "app"}}, true, []metadata.QuotaEntity{eAliceApp}},
		{"client any", []comp{{"client-id", kmsg.QuotasMatchTypeAny, ""}}, false, []metadata.QuotaEntity{eAliceApp, eApp, eBothDefaults}},
		{"client exact strict", []comp{{"client-id", kmsg.QuotasMatchTypeExact, "app"}}, true, []metadata.QuotaEntity{eApp}},
		{"ip any", []comp{{"ip", kmsg.QuotasMatchTypeAny, ""}}, false, []metadata.QuotaEntity{eIP, eIPDefault}},
		{"ip exact", []comp{{"ip", kmsg.QuotasMatchTypeExact, "10.0.0.1"}}, false, []metadata.QuotaEntity{eIP}},
		{"ip default", []comp{{"ip", kmsg.QuotasMatchTypeDefault, ""}}, true, []metadata.QuotaEntity{eIPDefault}},
		{"nobody", []comp{{"user", kmsg.QuotasMatchTypeExact, "nobody"}}, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrDescribeClientQuotasRequest()
			req.Version = 1
			req.Strict = tc.strict
			for _, c := range tc.comps {
				rc := kmsg.NewDescribeClientQuotasRequestComponent()
				rc.EntityType, rc.MatchType, rc.Match = c.typ, c.match, strOrNull(c.name)
				req.Components = append(req.Components, rc)
			}
			resp := rc.do(req).(*kmsg.DescribeClientQuotasResponse)
			if resp.ErrorCode != 0 {
				t.Fatalf("%v %v", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage)
			}
			var got []metadata.QuotaEntity
			for _, e := range resp.Entries {
				var ent metadata.QuotaEntity
				for _, c := range e.Entity {
					n := quotaDefault
					if c.Name != nil {
						n = named(*c.Name)
					}
					switch c.Type {
					case "user":
						ent.User = n
					case "client-id":
						ent.ClientID = n
					case "ip":
						ent.IP = n
					default:
						t.Errorf("entity type %q", c.Type)
					}
				}
				for _, v := range e.Values {
					if stored[ent][v.Key] != v.Value {
						t.Errorf("%v: %s=%v, stored %v", ent, v.Key, v.Value, stored[ent])
					}
				}
				if len(e.Values) != len(stored[ent]) {
					t.Errorf("%v: %d values, want %d", ent, len(e.Values), len(stored[ent]))
				}
				got = append(got, ent)
			}
			want := slices.Clone(tc.want)
			slices.SortFunc(want, compareQuotaEntities)
			if !slices.Equal(got, want) {
				t.Errorf("described\n%v\nwant\n%v", got, want)
			}
		})
	}

	t.Run("remove", func(t *testing.T) {
		resp := alterQuotas(t, rc, false,
			qentry(qe("user=alice"), qremove("producer_byte_rate"), qremove("consumer_byte_rate")),
			qentry(qe("ip"), qremove("connection_creation_rate")))
		for _, e := range resp.Entries {
			if e.ErrorCode != 0 {
				t.Fatalf("%v %v", kerr.ErrorForCode(e.ErrorCode), e.ErrorMessage)
			}
		}
		q := ts.meta.ClientQuotas()
		if got := q[eAlice]; len(got) != 1 || got["request_percentage"] != 50.5 {
			t.Errorf("alice left with %v", got)
		}
		if _, ok := q[eIPDefault]; ok {
			t.Error("an entity with no quotas left is still listed")
		}
	})
}

func TestClientQuotasAlterValidation(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)
	ok := qentry(qe("user=fine"), qset("producer_byte_rate", 1))
	for _, tc := range []struct {
		name  string
		entry kmsg.AlterClientQuotasRequestEntry
	}{
		{"unknown key", qentry(qe("user=u"), qset("bogus_rate", 1))},
		{"ip key on a user", qentry(qe("user=u"), qset("connection_creation_rate", 1))},
		{"user key on an ip", qentry(qe("ip=10.0.0.2"), qset("producer_byte_rate", 1))},
		{"zero", qentry(qe("user=u"), qset("producer_byte_rate", 0))},
		{"negative", qentry(qe("client-id=c"), qset("request_percentage", -1))},
		{"NaN", qentry(qe("user=u"), qset("request_percentage", math.NaN()))},
		{"infinite", qentry(qe("user=u"), qset("request_percentage", math.Inf(1)))},
		{"fractional byte rate", qentry(qe("user=u"), qset("consumer_byte_rate", 10.5))},
		{"fractional connection rate", qentry(qe("ip=10.0.0.2"), qset("connection_creation_rate", 1.5))},
		{"connection rate too large", qentry(qe("ip=10.0.0.2"), qset("connection_creation_rate", 1<<32))},
		{"ip with user", qentry(qe("user=u", "ip=10.0.0.2"), qset("connection_creation_rate", 1))},
		{"not an ip", qentry(qe("ip=not-an-ip"), qset("connection_creation_rate", 1))},
		{"empty name", qentry(qe("user="), qset("producer_byte_rate", 1))},
		{"unknown entity type", qentry(qe("group=g"), qset("producer_byte_rate", 1))},
		{"type twice", qentry(qe("user=a", "user=b"), qset("producer_byte_rate", 1))},
		{"empty entity", qentry(nil, qset("producer_byte_rate", 1))},
		{"key twice", qentry(qe("user=u"), qset("producer_byte_rate", 1), qremove("producer_byte_rate"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := alterQuotas(t, rc, false, tc.entry, ok)
			if e := resp.Entries[0]; e.ErrorCode != kerr.InvalidRequest.Code || e.ErrorMessage == nil || *e.ErrorMessage == "" {
				t.Errorf("%v %v, want INVALID_REQUEST with a reason", kerr.ErrorForCode(e.ErrorCode), e.ErrorMessage)
			}
			if e := resp.Entries[1]; e.ErrorCode != 0 {
				t.Errorf("valid entry beside it: %v", kerr.ErrorForCode(e.ErrorCode))
			}
		})
	}
	t.Run("entity twice", func(t *testing.T) {
		resp := alterQuotas(t, rc, false,
			qentry(qe("user=twice"), qset("producer_byte_rate", 1)),
			qentry(qe("user=twice"), qset("consumer_byte_rate", 1)))
		for _, e := range resp.Entries {
			if e.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("%v, want INVALID_REQUEST", kerr.ErrorForCode(e.ErrorCode))
			}
		}
	})
	want := map[metadata.QuotaEntity]map[string]float64{{User: named("fine")}: {"producer_byte_rate": 1}}
	if got := ts.meta.ClientQuotas(); len(got) != 1 || got[metadata.QuotaEntity{User: named("fine")}]["producer_byte_rate"] != 1 {
		t.Errorf("stored %v, want %v", got, want)
	}
	var refused int
	for _, l := range capt.lines(t, "AlterClientQuotas") {
		if l["outcome"] == "INVALID_REQUEST" {
			refused++
		}
	}
	if refused != 19 {
		t.Errorf("%d refusals audited, want 19", refused)
	}
}

func TestClientQuotasIPCanonical(t *testing.T) {
	ts, _ := secServer(t, false, false)
	rc := ts.raw(t)
	if e := alterQuotas(t, rc, false, qentry(qe("ip=::0001"), qset("connection_creation_rate", 3))).Entries[0]; e.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(e.ErrorCode))
	}
	if e := alterQuotas(t, rc, false, qentry(qe("ip=::ffff:10.0.0.9"), qset("connection_creation_rate", 4))).Entries[0]; e.ErrorCode != 0 {
		t.Fatal(kerr.ErrorForCode(e.ErrorCode))
	}
	q := ts.meta.ClientQuotas()
	if q[metadata.QuotaEntity{IP: named("::1")}]["connection_creation_rate"] != 3 || q[metadata.QuotaEntity{IP: named("10.0.0.9")}]["connection_creation_rate"] != 4 {
		t.Errorf("stored %v, want ::1 and 10.0.0.9 (canonical, unmapped)", q)
	}
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType, c.MatchType, c.Match = "ip", kmsg.QuotasMatchTypeExact, kmsg.StringPtr("0:0:0:0:0:0:0:1")
	req.Components = append(req.Components, c)
	if resp := rc.do(req).(*kmsg.DescribeClientQuotasResponse); len(resp.Entries) != 1 {
		t.Errorf("describing ::1 spelled long: %+v", resp)
	}
}

func TestClientQuotasValidateOnly(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)
	resp := alterQuotas(t, rc, true,
		qentry(qe("user=v"), qset("producer_byte_rate", 1)),
		qentry(qe("user=v2"), qset("producer_byte_rate", -1)))
	if resp.Entries[0].ErrorCode != 0 || resp.Entries[1].ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("validate only: %+v", resp.Entries)
	}
	if got := ts.meta.ClientQuotas(); len(got) != 0 {
		t.Errorf("validate_only stored %v", got)
	}
	if l := capt.lines(t, "AlterClientQuotas"); len(l) != 0 {
		t.Errorf("validate_only audited as a change: %v", l)
	}
}

func TestClientQuotasFilterValidation(t *testing.T) {
	ts, _ := secServer(t, false, false)
	rc := ts.raw(t)
	type comp = kmsg.DescribeClientQuotasRequestComponent
	mk := func(typ string, m kmsg.QuotasMatchType, name *string) comp {
		c := kmsg.NewDescribeClientQuotasRequestComponent()
		c.EntityType, c.MatchType, c.Match = typ, m, name
		return c
	}
	x := kmsg.StringPtr("x")
	for _, tc := range []struct {
		name  string
		comps []comp
		want  int16
	}{
		{"exact without a name", []comp{mk("user", kmsg.QuotasMatchTypeExact, nil)}, kerr.InvalidRequest.Code},
		{"default with a name", []comp{mk("user", kmsg.QuotasMatchTypeDefault, x)}, kerr.InvalidRequest.Code},
		{"any with a name", []comp{mk("user", kmsg.QuotasMatchTypeAny, x)}, kerr.InvalidRequest.Code},
		{"unknown match type", []comp{mk("user", 7, nil)}, kerr.InvalidRequest.Code},
		{"empty type", []comp{mk("", kmsg.QuotasMatchTypeAny, nil)}, kerr.InvalidRequest.Code},
		{"type twice", []comp{mk("user", kmsg.QuotasMatchTypeAny, nil), mk("user", kmsg.QuotasMatchTypeExact, x)}, kerr.InvalidRequest.Code},
		{"ip with user", []comp{mk("ip", kmsg.QuotasMatchTypeAny, nil), mk("user", kmsg.QuotasMatchTypeAny, nil)}, kerr.InvalidRequest.Code},
		{"unknown entity type", []comp{mk("group", kmsg.QuotasMatchTypeAny, nil)}, kerr.UnsupportedVersion.Code},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := kmsg.NewPtrDescribeClientQuotasRequest()
			req.Components = tc.comps
			resp := rc.do(req).(*kmsg.DescribeClientQuotasResponse)
			if resp.ErrorCode != tc.want || resp.ErrorMessage == nil {
				t.Errorf("%v %v, want %v with a reason", kerr.ErrorForCode(resp.ErrorCode), resp.ErrorMessage, kerr.ErrorForCode(tc.want))
			}
		})
	}
}

func TestClientQuotasClusterAuthorizationFailed(t *testing.T) {
	ts, capt := secServer(t, true, false)
	rc := ts.raw(t)
	resp := alterQuotas(t, rc, false, qentry(qe("user=u"), qset("producer_byte_rate", 1)))
	if e := resp.Entries[0]; e.ErrorCode != kerr.ClusterAuthorizationFailed.Code || len(e.Entity) != 1 {
		t.Errorf("alter: %+v, want CLUSTER_AUTHORIZATION_FAILED echoing the entity", e)
	}
	if got := ts.meta.ClientQuotas(); len(got) != 0 {
		t.Errorf("stored %v", got)
	}
	if dr := rc.do(kmsg.NewPtrDescribeClientQuotasRequest()).(*kmsg.DescribeClientQuotasResponse); dr.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe: %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(dr.ErrorCode))
	}
	if l := capt.lines(t, "AlterClientQuotas"); len(l) != 1 || l[0]["outcome"] != "CLUSTER_AUTHORIZATION_FAILED" || l[0]["entity"] != "user=u" {
		t.Errorf("audit %v", l)
	}
}

// TestClientQuotasKadm goes through franz-go's admin client.
func TestClientQuotasKadm(t *testing.T) {
	ts, _ := secServer(t, false, false)
	adm := kadm.NewClient(ts.client(t))
	ctx := context.Background()
	alice := kadm.ClientQuotaEntityComponent{Type: "user", Name: kmsg.StringPtr("alice")}
	app := kadm.ClientQuotaEntityComponent{Type: "client-id", Name: kmsg.StringPtr("app")}
	altered, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{
		Entity: kadm.ClientQuotaEntity{alice, app},
		Ops:    []kadm.AlterClientQuotaOp{{Key: "producer_byte_rate", Value: 4096}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range altered {
		if a.Err != nil {
			t.Fatalf("alter: %v %s", a.Err, a.ErrMessage)
		}
	}
	described, err := adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{
		{Type: "user", MatchName: kmsg.StringPtr("alice"), MatchType: kmsg.QuotasMatchTypeExact},
		{Type: "client-id", MatchType: kmsg.QuotasMatchTypeAny},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(described) != 1 || len(described[0].Values) != 1 || described[0].Values[0].Key != "producer_byte_rate" || described[0].Values[0].Value != 4096 {
		t.Errorf("described %+v", described)
	}
}

// FuzzClientQuotaParsing feeds arbitrary request bodies through the quota
// request validation: it must never panic, and what it accepts must hold
// the invariants the metadata and the quota manager rely on.
func FuzzClientQuotaParsing(f *testing.F) {
	for _, e := range quotaFixture {
		req := kmsg.NewPtrAlterClientQuotasRequest()
		req.Version = 1
		req.Entries = append(req.Entries, e)
		f.Add(int16(1), req.AppendTo(nil))
	}
	desc := kmsg.NewPtrDescribeClientQuotasRequest()
	c := kmsg.NewDescribeClientQuotasRequestComponent()
	c.EntityType, c.MatchType, c.Match = "user", kmsg.QuotasMatchTypeExact, kmsg.StringPtr("alice")
	desc.Components = append(desc.Components, c)
	f.Add(int16(0), desc.AppendTo(nil))
	known := []metadata.QuotaEntity{eAlice, eUserDefault, eAliceApp, eApp, eBothDefaults, eIP, eIPDefault}

	f.Fuzz(func(t *testing.T, version int16, body []byte) {
		version &= 1
		alter := kmsg.NewPtrAlterClientQuotasRequest()
		alter.Version = version
		if alter.ReadFrom(body) == nil {
			for _, e := range alter.Entries {
				ent, keys, msg := parseQuotaEntity(e.Entity)
				if msg != "" {
					continue
				}
				if ent.IP.Set && (ent.User.Set || ent.ClientID.Set) {
					t.Fatalf("accepted ip combined with user or client-id: %+v", ent)
				}
				if ip, ok := canonicalIP(ent.IP); ent.IP.Set && (!ok || ip != ent.IP) {
					t.Fatalf("accepted a non-canonical ip %+v", ent.IP)
				}
				alt, msg := quotaAlteration(ent, keys, e.Ops)
				if msg != "" {
					continue
				}
				for k, v := range alt.Set {
					if _, ok := keys[k]; !ok || !(v > 0) || math.IsInf(v, 0) {
						t.Fatalf("accepted %s=%v for %s", k, v, quotaEntityString(ent))
					}
				}
			}
		}
		describe := kmsg.NewPtrDescribeClientQuotasRequest()
		describe.Version = version
		if describe.ReadFrom(body) == nil {
			qf, code, msg := parseQuotaFilter(describe)
			if (code == 0) != (msg == "") {
				t.Fatalf("code %d with message %q", code, msg)
			}
			if code == 0 {
				for _, e := range known {
					qf.matches(e)
				}
			}
		}
	})
}
