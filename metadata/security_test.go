package metadata

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Kafka wire codes used by the tests, literal on purpose: they are what the
// broker hands over.
const (
	tTopic, tGroup, tCluster, tUser = int8(2), int8(3), int8(4), int8(7)
	tLiteral, tPrefixed             = int8(3), int8(4)
	tAll, tRead, tWrite, tDescribe  = int8(2), int8(3), int8(4), int8(8)
	tDeny, tAllow                   = int8(2), int8(3)
)

func binding(rt int8, name string, pt int8, principal string, op, perm int8) aclRec {
	return aclRec{ResourceType: rt, ResourceName: name, PatternType: pt, Principal: principal, Host: "*", Operation: op, Permission: perm}
}

var (
	aliceReadsOrders = binding(tTopic, "orders", tLiteral, "User:alice", tRead, tAllow)
	aliceWritesOrd   = binding(tTopic, "ord", tPrefixed, "User:alice", tWrite, tAllow)
	bobDeniedCluster = binding(tCluster, "kafka-cluster", tLiteral, "User:bob", tAll, tDeny)
	anyoneDescribes  = binding(tGroup, "*", tLiteral, "User:*", tDescribe, tAllow)
)

func cred(user string, mech int8, iterations int32) scramRec {
	return scramRec{
		User: user, Mechanism: mech, Iterations: iterations,
		Salt:      []byte("salt-" + user),
		StoredKey: bytes.Repeat([]byte{byte(mech)}, 32),
		ServerKey: bytes.Repeat([]byte{byte(mech) + 10}, 32),
	}
}

func named(n string) quotaNameRec { return quotaNameRec{Set: true, Name: n} }

var dflt = quotaNameRec{Set: true, Default: true}

func userQ(n quotaNameRec) quotaEntityRec   { return quotaEntityRec{User: n} }
func clientQ(n quotaNameRec) quotaEntityRec { return quotaEntityRec{ClientID: n} }
func ipQ(n quotaNameRec) quotaEntityRec     { return quotaEntityRec{IP: n} }

func alterQuotas(e quotaEntityRec, set map[string]float64, remove ...string) *alterClientQuotasV1 {
	return &alterClientQuotasV1{Alterations: []quotaAlterationRec{{Entity: e, Set: set, Remove: remove}}}
}

// sampleSecurityCommands touches every security field. sampleCommands
// includes them, so the round-trip tests and the fuzz seeds cover them.
func sampleSecurityCommands() []command {
	return []command{
		&createACLsV1{ACLs: []aclRec{aliceReadsOrders, aliceWritesOrd, bobDeniedCluster, anyoneDescribes,
			{ResourceType: tUser, ResourceName: "carol", PatternType: tLiteral, Principal: "User:admin", Host: "10.0.0.1", Operation: 14, Permission: tAllow}}},
		&deleteACLsV1{ACLs: []aclRec{anyoneDescribes}},
		&alterScramCredentialsV1{Upserts: []scramRec{cred("alice", 1, 4096), cred("alice", 2, 8192), cred("bob", 1, 16384)}},
		&alterScramCredentialsV1{Upserts: []scramRec{cred("carol", 2, 4096)}, Deletes: []scramKeyRec{{"bob", 1}}},
		&alterClientQuotasV1{Alterations: []quotaAlterationRec{
			{Entity: userQ(named("alice")), Set: map[string]float64{"producer_byte_rate": 1048576, "request_percentage": 12.5}},
			{Entity: userQ(dflt), Set: map[string]float64{"consumer_byte_rate": 2048}},
			{Entity: quotaEntityRec{User: named("alice"), ClientID: named("app")}, Set: map[string]float64{"controller_mutation_rate": 0.5}},
			{Entity: quotaEntityRec{User: dflt, ClientID: dflt}, Set: map[string]float64{"producer_byte_rate": 1}},
			{Entity: clientQ(named("batch")), Set: map[string]float64{"consumer_byte_rate": 0}},
			{Entity: ipQ(named("192.0.2.7")), Set: map[string]float64{"connection_creation_rate": 30}},
			{Entity: ipQ(dflt), Set: map[string]float64{"connection_creation_rate": 100}},
			{Entity: ipQ(named("2001:db8::1")), Set: map[string]float64{"connection_creation_rate": 5}},
		}},
		alterQuotas(ipQ(named("2001:db8::1")), nil, "connection_creation_rate"),
	}
}

func TestSecurityCommandEncoding(t *testing.T) {
	// Pins the log format of the security commands: entries written today
	// are decoded by every future binary.
	tests := []struct {
		cmd  command
		want string // hex header + JSON payload
	}{
		{&createACLsV1{ACLs: []aclRec{aliceReadsOrders}},
			`000a0001{"acls":[{"resource_type":2,"resource_name":"orders","pattern_type":3,"principal":"User:alice","host":"*","operation":3,"permission":3}]}`},
		{&deleteACLsV1{ACLs: []aclRec{bobDeniedCluster}},
			`000b0001{"acls":[{"resource_type":4,"resource_name":"kafka-cluster","pattern_type":3,"principal":"User:bob","host":"*","operation":2,"permission":2}]}`},
		{&alterScramCredentialsV1{
			Upserts: []scramRec{{User: "u", Mechanism: 2, Iterations: 4096, Salt: []byte{1, 2}, StoredKey: []byte{3}, ServerKey: []byte{4}}},
			Deletes: []scramKeyRec{{User: "v", Mechanism: 1}}},
			`000c0001{"upserts":[{"user":"u","mechanism":2,"iterations":4096,"salt":"AQI=","stored_key":"Aw==","server_key":"BA=="}],"deletes":[{"user":"v","mechanism":1}]}`},
		{&alterClientQuotasV1{Alterations: []quotaAlterationRec{{
			Entity: quotaEntityRec{User: named("alice"), ClientID: dflt},
			Set:    map[string]float64{"request_percentage": 12.5, "producer_byte_rate": 1e6},
			Remove: []string{"consumer_byte_rate"},
		}}},
			`000d0001{"alterations":[{"entity":{"user":{"set":true,"default":false,"name":"alice"},"client_id":{"set":true,"default":true,"name":""},` +
				`"ip":{"set":false,"default":false,"name":""}},"set":{"producer_byte_rate":1000000,"request_percentage":12.5},"remove":["consumer_byte_rate"]}]}`},
	}
	for _, tc := range tests {
		t.Run(reflect.TypeOf(tc.cmd).Elem().Name(), func(t *testing.T) {
			data, err := encodeCommand(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(data[:4]) + string(data[4:]); got != tc.want {
				t.Errorf("encoding\n got: %s\nwant: %s", got, tc.want)
			}
			back, err := decodeCommand(data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tc.cmd) {
				t.Errorf("decoded\n got: %+v\nwant: %+v", back, tc.cmd)
			}
		})
	}
}

func TestDecodeSecurityCommandRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
	}{
		{"unknown field in a binding", envelope(uint16(cmdCreateACLs), 1, `{"acls":[{"resource_type":2,"wildcard":true}]}`)},
		{"unknown top-level field", envelope(uint16(cmdDeleteACLs), 1, `{"acls":[],"filters":[]}`)},
		{"mechanism as a name", envelope(uint16(cmdAlterScramCreds), 1, `{"upserts":[{"user":"u","mechanism":"SCRAM-SHA-256"}]}`)},
		{"salt not base64", envelope(uint16(cmdAlterScramCreds), 1, `{"upserts":[{"user":"u","salt":"%%"}]}`)},
		{"quota value as a string", envelope(uint16(cmdAlterClientQuotas), 1, `{"alterations":[{"set":{"producer_byte_rate":"10"}}]}`)},
		{"quota value out of range", envelope(uint16(cmdAlterClientQuotas), 1, `{"alterations":[{"set":{"producer_byte_rate":1e999}}]}`)},
		{"unknown entity type", envelope(uint16(cmdAlterClientQuotas), 1, `{"alterations":[{"entity":{"group":{"set":true}}}]}`)},
		{"newer version", envelope(uint16(cmdCreateACLs), 2, `{"acls":[]}`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := decodeCommand(tc.data); err == nil {
				t.Fatalf("decodeCommand accepted it: %+v", c)
			}
		})
	}
}

func wantACLs(want ...aclRec) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		var got []aclRec
		for _, a := range f.acls() {
			got = append(got, aclRec(a))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ACLs\n got: %v\nwant: %v", got, want)
		}
	}
}

func TestFSMACLs(t *testing.T) {
	create := func(acls ...aclRec) *createACLsV1 { return &createACLsV1{ACLs: acls} }
	del := func(acls ...aclRec) *deleteACLsV1 { return &deleteACLsV1{ACLs: acls} }
	with := func(change func(*aclRec)) aclRec {
		a := aliceReadsOrders
		change(&a)
		return a
	}
	invalid := []struct {
		name string
		acl  aclRec
	}{
		{"resource type UNKNOWN", with(func(a *aclRec) { a.ResourceType = 0 })},
		{"resource type ANY", with(func(a *aclRec) { a.ResourceType = 1 })},
		{"resource type past USER", with(func(a *aclRec) { a.ResourceType = 8 })},
		{"pattern UNKNOWN", with(func(a *aclRec) { a.PatternType = 0 })},
		{"pattern ANY", with(func(a *aclRec) { a.PatternType = 1 })},
		{"pattern MATCH", with(func(a *aclRec) { a.PatternType = 2 })},
		{"pattern past PREFIXED", with(func(a *aclRec) { a.PatternType = 5 })},
		{"operation UNKNOWN", with(func(a *aclRec) { a.Operation = 0 })},
		{"operation ANY", with(func(a *aclRec) { a.Operation = 1 })},
		{"operation past DESCRIBE_TOKENS", with(func(a *aclRec) { a.Operation = 15 })},
		{"negative operation", with(func(a *aclRec) { a.Operation = -1 })},
		{"permission UNKNOWN", with(func(a *aclRec) { a.Permission = 0 })},
		{"permission ANY", with(func(a *aclRec) { a.Permission = 1 })},
		{"permission past ALLOW", with(func(a *aclRec) { a.Permission = 4 })},
		{"empty resource name", with(func(a *aclRec) { a.ResourceName = "" })},
		{"empty principal", with(func(a *aclRec) { a.Principal = "" })},
		{"empty host", with(func(a *aclRec) { a.Host = "" })},
	}
	cases := []fsmCase{
		{
			name:    "create",
			cmd:     create(bobDeniedCluster, aliceReadsOrders, aliceWritesOrd),
			changed: true,
			// Sorted by resource type, name, pattern, principal, ...
			check: wantACLs(aliceWritesOrd, aliceReadsOrders, bobDeniedCluster),
		},
		{
			name:  "identical binding is a no-op",
			setup: []command{create(aliceReadsOrders)},
			cmd:   create(aliceReadsOrders, aliceReadsOrders),
			check: wantACLs(aliceReadsOrders),
		},
		{
			name:    "a binding differing only in host is another binding",
			setup:   []command{create(aliceReadsOrders)},
			cmd:     create(with(func(a *aclRec) { a.Host = "10.0.0.1" })),
			changed: true,
			check:   wantACLs(aliceReadsOrders, with(func(a *aclRec) { a.Host = "10.0.0.1" })), // "*" sorts first
		},
		{
			name:    "delete returns the removed bindings in input order, each once",
			setup:   []command{create(aliceReadsOrders, aliceWritesOrd, bobDeniedCluster)},
			cmd:     del(bobDeniedCluster, anyoneDescribes, aliceReadsOrders, bobDeniedCluster),
			changed: true,
			check: func(t *testing.T, f *fsm, res applyResult) {
				if want := []aclRec{bobDeniedCluster, aliceReadsOrders}; !reflect.DeepEqual(res.removedACLs, want) {
					t.Errorf("removed %v, want %v", res.removedACLs, want)
				}
				wantACLs(aliceWritesOrd)(t, f, res)
			},
		},
		{
			name:  "deleting bindings that do not exist changes nothing",
			setup: []command{create(aliceReadsOrders)},
			cmd:   del(anyoneDescribes, with(func(a *aclRec) { a.Permission = tDeny })),
			check: func(t *testing.T, f *fsm, res applyResult) {
				if res.removedACLs != nil {
					t.Errorf("removed %v, want none", res.removedACLs)
				}
			},
		},
		{name: "create nothing", cmd: create()},
	}
	for _, tc := range invalid {
		cases = append(cases,
			fsmCase{name: "create: " + tc.name, cmd: create(aliceWritesOrd, tc.acl), wantErr: ErrInvalidArgument},
			fsmCase{name: "delete: " + tc.name, setup: []command{create(aliceReadsOrders)}, cmd: del(aliceReadsOrders, tc.acl), wantErr: ErrInvalidArgument},
		)
	}
	runFSMCases(t, cases)
}

func wantScram(want ...scramRec) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		var got []scramRec
		for _, c := range f.scramCredentials() {
			got = append(got, scramRec(c))
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("SCRAM credentials\n got: %+v\nwant: %+v", got, want)
		}
	}
}

func TestFSMScramCredentials(t *testing.T) {
	upsert := func(cs ...scramRec) *alterScramCredentialsV1 { return &alterScramCredentialsV1{Upserts: cs} }
	del := func(ks ...scramKeyRec) *alterScramCredentialsV1 { return &alterScramCredentialsV1{Deletes: ks} }
	with := func(change func(*scramRec)) scramRec {
		c := cred("alice", 1, 4096)
		change(&c)
		return c
	}
	replaced := with(func(c *scramRec) { c.Iterations = 8192; c.Salt = []byte("new salt") })
	runFSMCases(t, []fsmCase{
		{
			name:    "add",
			cmd:     upsert(cred("bob", 2, 4096), cred("alice", 2, 16384), cred("alice", 1, 4096)),
			changed: true,
			check:   wantScram(cred("alice", 1, 4096), cred("alice", 2, 16384), cred("bob", 2, 4096)),
		},
		{
			name:  "identical upsert is a no-op",
			setup: []command{upsert(cred("alice", 1, 4096))},
			cmd:   upsert(cred("alice", 1, 4096)),
		},
		{
			name:    "upsert replaces",
			setup:   []command{upsert(cred("alice", 1, 4096), cred("alice", 2, 4096))},
			cmd:     upsert(replaced),
			changed: true,
			check:   wantScram(replaced, cred("alice", 2, 4096)),
		},
		{
			name:    "delete",
			setup:   []command{upsert(cred("alice", 1, 4096), cred("alice", 2, 4096))},
			cmd:     del(scramKeyRec{"alice", 2}),
			changed: true,
			check:   wantScram(cred("alice", 1, 4096)),
		},
		{
			name:  "deleting a missing credential is a no-op",
			setup: []command{upsert(cred("alice", 1, 4096))},
			cmd:   del(scramKeyRec{"alice", 2}, scramKeyRec{"bob", 1}),
		},
		{
			name:    "upsert and delete in one command",
			setup:   []command{upsert(cred("alice", 1, 4096))},
			cmd:     &alterScramCredentialsV1{Upserts: []scramRec{cred("bob", 1, 4096)}, Deletes: []scramKeyRec{{"alice", 1}}},
			changed: true,
			check:   wantScram(cred("bob", 1, 4096)),
		},
		{name: "mechanism 0", cmd: upsert(with(func(c *scramRec) { c.Mechanism = 0 })), wantErr: ErrInvalidArgument},
		{name: "mechanism 3", cmd: upsert(with(func(c *scramRec) { c.Mechanism = 3 })), wantErr: ErrInvalidArgument},
		{name: "too few iterations", cmd: upsert(with(func(c *scramRec) { c.Iterations = 4095 })), wantErr: ErrInvalidArgument},
		{name: "too many iterations", cmd: upsert(with(func(c *scramRec) { c.Iterations = 16385 })), wantErr: ErrInvalidArgument},
		{name: "empty user", cmd: upsert(with(func(c *scramRec) { c.User = "" })), wantErr: ErrInvalidArgument},
		{name: "empty salt", cmd: upsert(with(func(c *scramRec) { c.Salt = []byte{} })), wantErr: ErrInvalidArgument},
		{name: "no stored key", cmd: upsert(with(func(c *scramRec) { c.StoredKey = nil })), wantErr: ErrInvalidArgument},
		{name: "no server key", cmd: upsert(with(func(c *scramRec) { c.ServerKey = nil })), wantErr: ErrInvalidArgument},
		{
			name:    "one bad credential rejects the command",
			cmd:     upsert(cred("bob", 1, 4096), with(func(c *scramRec) { c.Iterations = 1 })),
			wantErr: ErrInvalidArgument,
		},
		{name: "upserted twice", cmd: upsert(cred("alice", 1, 4096), cred("alice", 1, 8192)), wantErr: ErrInvalidArgument},
		{
			name:    "upserted and deleted",
			setup:   []command{upsert(cred("alice", 1, 4096))},
			cmd:     &alterScramCredentialsV1{Upserts: []scramRec{cred("alice", 1, 8192)}, Deletes: []scramKeyRec{{"alice", 1}}},
			wantErr: ErrInvalidArgument,
		},
		{name: "deleted twice", setup: []command{upsert(cred("alice", 1, 4096))}, cmd: del(scramKeyRec{"alice", 1}, scramKeyRec{"alice", 1}), wantErr: ErrInvalidArgument},
		{name: "delete with a bad mechanism", cmd: del(scramKeyRec{"alice", 9}), wantErr: ErrInvalidArgument},
		{name: "delete with an empty user", cmd: del(scramKeyRec{"", 1}), wantErr: ErrInvalidArgument},
	})
}

func wantQuotas(want map[QuotaEntity]map[string]float64) func(*testing.T, *fsm, applyResult) {
	return func(t *testing.T, f *fsm, _ applyResult) {
		t.Helper()
		if got := f.clientQuotas(); !reflect.DeepEqual(got, want) {
			t.Errorf("client quotas\n got: %v\nwant: %v", got, want)
		}
	}
}

func TestFSMClientQuotas(t *testing.T) {
	alice := userQ(named("alice"))
	aliceApp := quotaEntityRec{User: named("alice"), ClientID: named("app")}
	one := func(k string, v float64) map[string]float64 { return map[string]float64{k: v} }
	invalid := []struct {
		name string
		cmd  *alterClientQuotasV1
	}{
		{"empty entity", alterQuotas(quotaEntityRec{}, one("producer_byte_rate", 1))},
		{"empty entity with removals only", alterQuotas(quotaEntityRec{}, nil, "producer_byte_rate")},
		{"default with a name", alterQuotas(userQ(quotaNameRec{Set: true, Default: true, Name: "alice"}), one("producer_byte_rate", 1))},
		{"absent part with a name", alterQuotas(quotaEntityRec{User: named("alice"), ClientID: quotaNameRec{Name: "app"}}, one("producer_byte_rate", 1))},
		{"absent part flagged default", alterQuotas(quotaEntityRec{User: named("alice"), IP: quotaNameRec{Default: true}}, one("producer_byte_rate", 1))},
		{"empty user name", alterQuotas(userQ(named("")), one("producer_byte_rate", 1))},
		{"empty client id", alterQuotas(clientQ(named("")), one("producer_byte_rate", 1))},
		{"ip with user", alterQuotas(quotaEntityRec{User: named("alice"), IP: named("192.0.2.1")}, one("connection_creation_rate", 1))},
		{"ip with client id", alterQuotas(quotaEntityRec{ClientID: dflt, IP: dflt}, one("connection_creation_rate", 1))},
		{"ip that is a host name", alterQuotas(ipQ(named("broker.example.com")), one("connection_creation_rate", 1))},
		{"unknown key", alterQuotas(alice, one("producer_byte_rates", 1))},
		{"connection rate on a user", alterQuotas(alice, one("connection_creation_rate", 1))},
		{"connection rate on a client id", alterQuotas(clientQ(dflt), one("connection_creation_rate", 1))},
		{"byte rate on an ip", alterQuotas(ipQ(dflt), one("producer_byte_rate", 1))},
		{"request percentage on an ip", alterQuotas(ipQ(named("192.0.2.1")), one("request_percentage", 1))},
		{"negative byte rate", alterQuotas(alice, one("producer_byte_rate", -1))},
		{"negative percentage", alterQuotas(alice, one("request_percentage", -0.5))},
		{"fractional byte rate", alterQuotas(alice, one("consumer_byte_rate", 1024.5))},
		{"fractional connection rate", alterQuotas(ipQ(dflt), one("connection_creation_rate", 1.5))},
		{"connection rate beyond an int", alterQuotas(ipQ(dflt), one("connection_creation_rate", math.MaxInt32+1))},
		{"byte rate beyond a long", alterQuotas(alice, one("producer_byte_rate", 1<<64))},
		{"key set and removed", alterQuotas(alice, one("producer_byte_rate", 1), "producer_byte_rate")},
		{"key removed twice", alterQuotas(alice, nil, "producer_byte_rate", "producer_byte_rate")},
		{"same entity twice", &alterClientQuotasV1{Alterations: []quotaAlterationRec{
			{Entity: alice, Set: one("producer_byte_rate", 1)}, {Entity: alice, Set: one("consumer_byte_rate", 1)}}}},
		{"one bad alteration rejects the command", &alterClientQuotasV1{Alterations: []quotaAlterationRec{
			{Entity: aliceApp, Set: one("producer_byte_rate", 1)}, {Entity: alice, Set: one("producer_byte_rate", -1)}}}},
	}
	cases := []fsmCase{
		{
			name:    "set quotas of every entity shape",
			cmd:     sampleSecurityCommands()[4],
			changed: true,
			check: wantQuotas(map[QuotaEntity]map[string]float64{
				{User: QuotaName{Set: true, Name: "alice"}}:                                                {"producer_byte_rate": 1048576, "request_percentage": 12.5},
				{User: QuotaName{Set: true, Default: true}}:                                                {"consumer_byte_rate": 2048},
				{User: QuotaName{Set: true, Name: "alice"}, ClientID: QuotaName{Set: true, Name: "app"}}:   {"controller_mutation_rate": 0.5},
				{User: QuotaName{Set: true, Default: true}, ClientID: QuotaName{Set: true, Default: true}}: {"producer_byte_rate": 1},
				{ClientID: QuotaName{Set: true, Name: "batch"}}:                                            {"consumer_byte_rate": 0},
				{IP: QuotaName{Set: true, Name: "192.0.2.7"}}:                                              {"connection_creation_rate": 30},
				{IP: QuotaName{Set: true, Default: true}}:                                                  {"connection_creation_rate": 100},
				{IP: QuotaName{Set: true, Name: "2001:db8::1"}}:                                            {"connection_creation_rate": 5},
			}),
		},
		{
			name:    "set and remove keys of one entity",
			setup:   []command{alterQuotas(alice, map[string]float64{"producer_byte_rate": 100, "consumer_byte_rate": 200})},
			cmd:     alterQuotas(alice, one("request_percentage", 50), "consumer_byte_rate"),
			changed: true,
			check: wantQuotas(map[QuotaEntity]map[string]float64{
				alice.public(): {"producer_byte_rate": 100, "request_percentage": 50},
			}),
		},
		{
			name:  "the same values change nothing",
			setup: []command{alterQuotas(alice, one("producer_byte_rate", 100))},
			cmd:   alterQuotas(alice, one("producer_byte_rate", 100), "consumer_byte_rate"),
		},
		{
			name:    "removing the last key removes the entity",
			setup:   []command{alterQuotas(alice, one("producer_byte_rate", 100)), alterQuotas(aliceApp, one("producer_byte_rate", 5))},
			cmd:     alterQuotas(alice, nil, "producer_byte_rate"),
			changed: true,
			check:   wantQuotas(map[QuotaEntity]map[string]float64{aliceApp.public(): {"producer_byte_rate": 5}}),
		},
		{
			name: "removing from an unknown entity changes nothing",
			cmd:  alterQuotas(alice, nil, "producer_byte_rate"),
		},
		{
			name: "removing a key an ip entity cannot have is a no-op",
			cmd:  alterQuotas(ipQ(dflt), nil, "producer_byte_rate"),
		},
		{
			name:  "removing an unknown key is a no-op",
			setup: []command{alterQuotas(alice, one("producer_byte_rate", 100))},
			cmd:   alterQuotas(alice, nil, "bandwidth"),
		},
		{
			name:    "whole numbers within Kafka's tolerance",
			cmd:     alterQuotas(alice, map[string]float64{"producer_byte_rate": 1024.0000001, "consumer_byte_rate": 2047.9999999}),
			changed: true,
		},
	}
	for _, tc := range invalid {
		cases = append(cases, fsmCase{name: tc.name, cmd: tc.cmd, wantErr: ErrInvalidArgument})
	}
	runFSMCases(t, cases)
}

func TestQuotaValuesMustBeFinite(t *testing.T) {
	// JSON cannot carry these, so the command never reaches the log; the
	// FSM refuses them anyway (a future encoding might carry them).
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		c := alterQuotas(userQ(named("alice")), map[string]float64{"request_percentage": v})
		if err := validQuotaAlterations(c.Alterations); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("validation of %v: %v, want ErrInvalidArgument", v, err)
		}
		f := newFSM()
		if res := f.apply(c); !errors.Is(res.err, ErrInvalidArgument) {
			t.Errorf("apply of %v: %v, want ErrInvalidArgument", v, res.err)
		}
		if len(f.st.quotas) != 0 || f.secVersion.Load() != 0 {
			t.Errorf("a rejected %v changed the state", v)
		}
	}
}

func TestSecurityVersion(t *testing.T) {
	f := newFSM()
	steps := []struct {
		name string
		cmd  command
		bump bool
	}{
		{"topic change", topicCmd("t", idA), false},
		{"create ACL", &createACLsV1{ACLs: []aclRec{aliceReadsOrders}}, true},
		{"create the same ACL", &createACLsV1{ACLs: []aclRec{aliceReadsOrders}}, false},
		{"invalid ACL", &createACLsV1{ACLs: []aclRec{{}}}, false},
		{"delete a missing ACL", &deleteACLsV1{ACLs: []aclRec{aliceWritesOrd}}, false},
		{"delete ACL", &deleteACLsV1{ACLs: []aclRec{aliceReadsOrders}}, true},
		{"add credential", &alterScramCredentialsV1{Upserts: []scramRec{cred("a", 1, 4096)}}, true},
		{"same credential", &alterScramCredentialsV1{Upserts: []scramRec{cred("a", 1, 4096)}}, false},
		{"delete credential", &alterScramCredentialsV1{Deletes: []scramKeyRec{{"a", 1}}}, true},
		{"set quota", alterQuotas(userQ(dflt), map[string]float64{"producer_byte_rate": 10}), true},
		{"same quota", alterQuotas(userQ(dflt), map[string]float64{"producer_byte_rate": 10}), false},
		{"remove quota", alterQuotas(userQ(dflt), nil, "producer_byte_rate"), true},
	}
	var want uint64
	for _, s := range steps {
		watch := f.watch()
		applyCmd(t, f, s.cmd)
		if s.bump {
			want++
			// Bumped before Watch fires: a waiter that wakes up reads the
			// new version.
			select {
			case <-watch:
			default:
				t.Errorf("%s: Watch did not fire", s.name)
			}
		}
		if got := f.secVersion.Load(); got != want {
			t.Errorf("after %s: version %d, want %d", s.name, got, want)
		}
	}
	if err := f.Restore(readCloser(snapshotState(t, f))); err != nil {
		t.Fatal(err)
	}
	if got := f.secVersion.Load(); got != want+1 {
		t.Errorf("after a restore: version %d, want %d (caches must reload)", got, want+1)
	}
}

func TestSecuritySnapshotRoundTrip(t *testing.T) {
	f := newFSM()
	for _, c := range sampleSecurityCommands() {
		if res := applyCmd(t, f, c); res.err != nil {
			t.Fatalf("%T: %v", c, res.err)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	wantACL, wantScramCreds, wantQ := f.acls(), f.scramCredentials(), f.clientQuotas()

	// Changes after Snapshot must not leak into it.
	applyCmd(t, f, &createACLsV1{ACLs: []aclRec{anyoneDescribes}})
	applyCmd(t, f, &deleteACLsV1{ACLs: []aclRec{aliceReadsOrders}})
	applyCmd(t, f, &alterScramCredentialsV1{Upserts: []scramRec{cred("alice", 1, 9999)}, Deletes: []scramKeyRec{{"carol", 2}}})
	applyCmd(t, f, alterQuotas(userQ(named("alice")), map[string]float64{"producer_byte_rate": 1}, "request_percentage"))
	applyCmd(t, f, alterQuotas(ipQ(dflt), nil, "connection_creation_rate"))

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sink.String(), `{"format":3,`) {
		t.Fatalf("snapshot with security state is not format 3: %.40s", sink.String())
	}
	g := newFSM()
	applyCmd(t, g, &createACLsV1{ACLs: []aclRec{withPrincipal(bobDeniedCluster, "stale")}}) // Restore must discard it
	if err := g.Restore(readCloser(sink.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := g.acls(); !reflect.DeepEqual(got, wantACL) {
		t.Errorf("ACLs after restore\n got: %v\nwant: %v", got, wantACL)
	}
	if got := g.scramCredentials(); !reflect.DeepEqual(got, wantScramCreds) {
		t.Errorf("SCRAM credentials after restore\n got: %+v\nwant: %+v", got, wantScramCreds)
	}
	if got := g.clientQuotas(); !reflect.DeepEqual(got, wantQ) {
		t.Errorf("quotas after restore\n got: %v\nwant: %v", got, wantQ)
	}
	// The restored state keeps working: a delete finds restored bindings.
	res := applyCmd(t, g, &deleteACLsV1{ACLs: []aclRec{aliceWritesOrd}})
	if res.err != nil || len(res.removedACLs) != 1 {
		t.Errorf("delete after restore: %v, removed %v", res.err, res.removedACLs)
	}
}

func withPrincipal(a aclRec, principal string) aclRec {
	a.Principal = "User:" + principal
	return a
}

func TestSnapshotFormat3(t *testing.T) {
	// Pins the format 3 document: changing it needs a new format number.
	f := newFSM()
	applyCmd(t, f, &initClusterV1{ClusterID: "c"})
	applyCmd(t, f, &createACLsV1{ACLs: []aclRec{aliceReadsOrders, aliceWritesOrd}})
	applyCmd(t, f, &alterScramCredentialsV1{Upserts: []scramRec{
		{User: "u", Mechanism: 2, Iterations: 4096, Salt: []byte{1}, StoredKey: []byte{2}, ServerKey: []byte{3}},
		{User: "u", Mechanism: 1, Iterations: 8192, Salt: []byte{4}, StoredKey: []byte{5}, ServerKey: []byte{6}},
	}})
	applyCmd(t, f, &alterClientQuotasV1{Alterations: []quotaAlterationRec{
		{Entity: quotaEntityRec{User: named("a"), ClientID: dflt}, Set: map[string]float64{"request_percentage": 0.25}},
		{Entity: userQ(dflt), Set: map[string]float64{"producer_byte_rate": 1024, "consumer_byte_rate": 2048}},
		{Entity: ipQ(named("::1")), Set: map[string]float64{"connection_creation_rate": 3}},
	}})
	const absent = `{"set":false,"default":false,"name":""}`
	want := `{"format":3,"cluster_id":"c","brokers":null,"topics":null,"next_producer_id":0,"remote_manifests":null,` +
		`"acls":[{"resource_type":2,"resource_name":"ord","pattern_type":4,"principal":"User:alice","host":"*","operation":4,"permission":3},` +
		`{"resource_type":2,"resource_name":"orders","pattern_type":3,"principal":"User:alice","host":"*","operation":3,"permission":3}],` +
		`"scram_credentials":[{"user":"u","mechanism":1,"iterations":8192,"salt":"BA==","stored_key":"BQ==","server_key":"Bg=="},` +
		`{"user":"u","mechanism":2,"iterations":4096,"salt":"AQ==","stored_key":"Ag==","server_key":"Aw=="}],` +
		`"client_quotas":[` +
		`{"entity":{"user":` + absent + `,"client_id":` + absent + `,"ip":{"set":true,"default":false,"name":"::1"}},"values":{"connection_creation_rate":3}},` +
		`{"entity":{"user":{"set":true,"default":true,"name":""},"client_id":` + absent + `,"ip":` + absent + `},"values":{"consumer_byte_rate":2048,"producer_byte_rate":1024}},` +
		`{"entity":{"user":{"set":true,"default":false,"name":"a"},"client_id":{"set":true,"default":true,"name":""},"ip":` + absent + `},"values":{"request_percentage":0.25}}]}` + "\n"
	if got := string(snapshotState(t, f)); got != want {
		t.Errorf("snapshot\n got: %s\nwant: %s", got, want)
	}
}

func TestSnapshotFormatFollowsContent(t *testing.T) {
	// The oldest format that holds the state, so not-yet-upgraded voters
	// can install snapshots until the newer feature is used.
	f := newFSM()
	applyCmd(t, f, topicCmd("t", idA))
	format := func() string { return string(snapshotState(t, f))[:12] }
	if got := format(); got != `{"format":1,` {
		t.Errorf("without manifests or security: %s", got)
	}
	applyCmd(t, f, alterQuotas(userQ(dflt), map[string]float64{"producer_byte_rate": 1}))
	if got := format(); got != `{"format":3,` {
		t.Errorf("with a quota and no manifest: %s", got)
	}
	applyCmd(t, f, alterQuotas(userQ(dflt), nil, "producer_byte_rate"))
	applyCmd(t, f, addSeg(idA, 0, seg("a", 0, 9)))
	if got := format(); got != `{"format":2,` {
		t.Errorf("with a manifest and no security: %s", got)
	}
}

func TestRestoreOlderFormatsClearSecurity(t *testing.T) {
	format2 := `{"format":2,"cluster_id":"c","brokers":null,"topics":null,"next_producer_id":0,"remote_manifests":null}`
	for name, doc := range map[string]string{"format 1": snapshotV1Doc, "format 2": format2} {
		t.Run(name, func(t *testing.T) {
			f := newFSM()
			for _, c := range sampleSecurityCommands() {
				applyCmd(t, f, c)
			}
			if err := f.Restore(readCloser([]byte(doc))); err != nil {
				t.Fatalf("restore: %v", err)
			}
			if len(f.acls()) != 0 || len(f.scramCredentials()) != 0 || len(f.clientQuotas()) != 0 {
				t.Errorf("security state survived a restore of a snapshot without any: %v %v %v", f.acls(), f.scramCredentials(), f.clientQuotas())
			}
			if f.clusterID() != "c" {
				t.Errorf("cluster id %q", f.clusterID())
			}
		})
	}
}

func TestRestoreRejectsBadSecurity(t *testing.T) {
	const aclOK = `{"resource_type":2,"resource_name":"t","pattern_type":3,"principal":"User:a","host":"*","operation":3,"permission":3}`
	const credOK = `{"user":"u","mechanism":1,"iterations":4096,"salt":"AQ==","stored_key":"Ag==","server_key":"Aw=="}`
	const quotaOK = `{"entity":{"user":{"set":true,"name":"a"}},"values":{"producer_byte_rate":10}}`
	doc := func(field, entries string) string { return `{"format":3,"` + field + `":[` + entries + `]}` }
	for _, ok := range []string{doc("acls", aclOK), doc("scram_credentials", credOK), doc("client_quotas", quotaOK)} {
		if err := newFSM().Restore(readCloser([]byte(ok))); err != nil {
			t.Fatalf("valid document %s refused: %v", ok, err)
		}
	}
	tests := []struct {
		name string
		data string
	}{
		{"ACLs in format 2", `{"format":2,"acls":[` + aclOK + `]}`},
		{"quotas in format 1", `{"format":1,"client_quotas":[` + quotaOK + `]}`},
		{"ACL with pattern MATCH", doc("acls", strings.Replace(aclOK, `"pattern_type":3`, `"pattern_type":2`, 1))},
		{"ACL with an empty principal", doc("acls", strings.Replace(aclOK, `"User:a"`, `""`, 1))},
		{"ACL listed twice", doc("acls", aclOK+","+aclOK)},
		{"ACL with an unknown field", doc("acls", strings.Replace(aclOK, `}`, `,"x":1}`, 1))},
		{"null credential", doc("scram_credentials", "null")},
		{"credential with too few iterations", doc("scram_credentials", strings.Replace(credOK, "4096", "4000", 1))},
		{"credential without salt", doc("scram_credentials", strings.Replace(credOK, `"AQ=="`, `""`, 1))},
		{"credential listed twice", doc("scram_credentials", credOK+","+credOK)},
		{"null quota", doc("client_quotas", "null")},
		{"quota without values", doc("client_quotas", `{"entity":{"user":{"set":true,"name":"a"}},"values":{}}`)},
		{"quota on an empty entity", doc("client_quotas", `{"entity":{},"values":{"producer_byte_rate":10}}`)},
		{"quota with an unknown key", doc("client_quotas", strings.Replace(quotaOK, "producer_byte_rate", "speed", 1))},
		{"negative quota", doc("client_quotas", strings.Replace(quotaOK, "10", "-10", 1))},
		{"quota entity listed twice", doc("client_quotas", quotaOK+","+quotaOK)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			applyCmd(t, f, &createACLsV1{ACLs: []aclRec{aliceReadsOrders}})
			if err := f.Restore(readCloser([]byte(tc.data))); !errors.Is(err, errUnsupportedSnapshot) {
				t.Fatalf("Restore = %v, want errUnsupportedSnapshot", err)
			}
			if len(f.acls()) != 1 {
				t.Error("a failed Restore changed the state")
			}
		})
	}
}

func TestSecurityReadsReturnCopies(t *testing.T) {
	f := newFSM()
	for _, c := range sampleSecurityCommands() {
		applyCmd(t, f, c)
	}
	before := snapshotState(t, f)
	acls := f.acls()
	acls[0].Principal = "User:mallory"
	c, ok := f.scramCredential("alice", 1)
	if !ok {
		t.Fatal("alice's SCRAM-SHA-256 credential is missing")
	}
	c.Salt[0]++
	c.StoredKey[0]++
	c.ServerKey[0]++
	all := f.scramCredentials()
	all[0].Salt[0]++
	q := f.clientQuotas()
	for e := range q {
		q[e]["producer_byte_rate"] = 1
	}
	if after := snapshotState(t, f); !bytes.Equal(before, after) {
		t.Errorf("state changed through returned copies:\n%s\n%s", before, after)
	}
	if _, ok := f.scramCredential("alice", 3); ok {
		t.Error("a credential for an unknown mechanism")
	}
	if _, ok := f.scramCredential("nobody", 1); ok {
		t.Error("a credential for an unknown user")
	}
}

func TestStoreSecurity(t *testing.T) {
	ctx := waitCtx(t)
	cfg := Config{NodeID: 1, Dir: t.TempDir(), tune: func(rc *raft.Config) {
		// Snapshots only when the test asks, leaving almost no log behind.
		rc.TrailingLogs = 1
		rc.SnapshotThreshold = 1 << 30
	}}
	s := openReady(t, cfg)
	v0 := s.SecurityVersion()

	readOrders := ACL(aliceReadsOrders)
	writeOrd := ACL(aliceWritesOrd)
	denyBob := ACL(bobDeniedCluster)
	watch := s.Watch()
	if err := s.CreateACLs(ctx, []ACL{denyBob, readOrders, writeOrd}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	default:
		t.Error("Watch did not fire on CreateACLs")
	}
	if v := s.SecurityVersion(); v <= v0 {
		t.Errorf("SecurityVersion %d after CreateACLs, was %d", v, v0)
	}
	bad := readOrders
	bad.PatternType = 1 // ANY: a filter value
	if err := s.CreateACLs(ctx, []ACL{bad}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CreateACLs(ANY pattern) = %v, want ErrInvalidArgument", err)
	}
	if _, err := s.DeleteACLs(ctx, []ACL{bad}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("DeleteACLs(ANY pattern) = %v, want ErrInvalidArgument", err)
	}
	removed, err := s.DeleteACLs(ctx, []ACL{denyBob, ACL(anyoneDescribes), denyBob})
	if err != nil {
		t.Fatal(err)
	}
	if want := []ACL{denyBob}; !reflect.DeepEqual(removed, want) {
		t.Errorf("DeleteACLs removed %v, want %v", removed, want)
	}
	if removed, err := s.DeleteACLs(ctx, []ACL{denyBob}); err != nil || len(removed) != 0 {
		t.Errorf("second DeleteACLs = %v, %v; want nothing removed", removed, err)
	}

	alice256 := ScramCredential(cred("alice", 1, 4096))
	alice512 := ScramCredential(cred("alice", 2, 8192))
	if err := s.AlterScramCredentials(ctx, []ScramCredential{alice256, alice512, ScramCredential(cred("bob", 1, 4096))}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AlterScramCredentials(ctx, nil, []ScramKey{{User: "bob", Mechanism: 1}}); err != nil {
		t.Fatal(err)
	}
	tooFew := alice256
	tooFew.Iterations = 100
	if err := s.AlterScramCredentials(ctx, []ScramCredential{tooFew}, nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("AlterScramCredentials(100 iterations) = %v, want ErrInvalidArgument", err)
	}

	aliceQ := QuotaEntity{User: QuotaName{Set: true, Name: "alice"}}
	ipDefault := QuotaEntity{IP: QuotaName{Set: true, Default: true}}
	if err := s.AlterClientQuotas(ctx, []QuotaAlteration{
		{Entity: aliceQ, Set: map[string]float64{"producer_byte_rate": 1 << 20, "consumer_byte_rate": 1 << 21}},
		{Entity: ipDefault, Set: map[string]float64{"connection_creation_rate": 10}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AlterClientQuotas(ctx, []QuotaAlteration{{Entity: aliceQ, Remove: []string{"consumer_byte_rate"}}}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{math.NaN(), math.Inf(1)} {
		err := s.AlterClientQuotas(ctx, []QuotaAlteration{{Entity: aliceQ, Set: map[string]float64{"request_percentage": v}}})
		if !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("AlterClientQuotas(%v) = %v, want ErrInvalidArgument", v, err)
		}
	}

	wantACLs := []ACL{writeOrd, readOrders}
	wantCreds := []ScramCredential{alice256, alice512}
	wantQuotas := map[QuotaEntity]map[string]float64{
		aliceQ:    {"producer_byte_rate": 1 << 20},
		ipDefault: {"connection_creation_rate": 10},
	}
	check := func(when string) {
		t.Helper()
		if got := s.ACLs(); !reflect.DeepEqual(got, wantACLs) {
			t.Errorf("%s: ACLs\n got: %v\nwant: %v", when, got, wantACLs)
		}
		if got := s.ScramCredentials(); !reflect.DeepEqual(got, wantCreds) {
			t.Errorf("%s: SCRAM credentials\n got: %+v\nwant: %+v", when, got, wantCreds)
		}
		if got, ok := s.ScramCredential("alice", 2); !ok || !reflect.DeepEqual(got, alice512) {
			t.Errorf("%s: ScramCredential(alice, 2) = %+v, %v", when, got, ok)
		}
		if _, ok := s.ScramCredential("bob", 1); ok {
			t.Errorf("%s: bob's deleted credential is back", when)
		}
		if got := s.ClientQuotas(); !reflect.DeepEqual(got, wantQuotas) {
			t.Errorf("%s: quotas\n got: %v\nwant: %v", when, got, wantQuotas)
		}
		if s.SecurityVersion() == 0 {
			t.Errorf("%s: SecurityVersion is 0 with security state loaded", when)
		}
	}
	check("before restart")
	mustClose(t, s)

	s = openReady(t, cfg)
	check("after a restart from the log")
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if err := s.CreateACLs(ctx, []ACL{denyBob}); err != nil { // the log tail
		t.Fatal(err)
	}
	wantACLs = []ACL{writeOrd, readOrders, denyBob}
	mustClose(t, s)

	s = openReady(t, cfg)
	check("after a restart from a snapshot")
	mustClose(t, s)
}
