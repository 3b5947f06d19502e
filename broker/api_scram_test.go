package broker

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/sasl"
)

func scramUpsert(user string, mech int8, iterations int32, password string) kmsg.AlterUserSCRAMCredentialsRequestUpsertion {
	u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	u.Name, u.Mechanism, u.Iterations = user, mech, iterations
	u.Salt = []byte("salt-of-" + user)
	u.SaltedPassword = sasl.SaltPassword(scramMechanismName(mech), password, u.Salt, int(iterations))
	if u.SaltedPassword == nil { // unknown mechanism: any bytes will do
		u.SaltedPassword = bytes.Repeat([]byte{7}, 32)
	}
	return u
}

func scramDelete(user string, mech int8) kmsg.AlterUserSCRAMCredentialsRequestDeletion {
	d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
	d.Name, d.Mechanism = user, mech
	return d
}

// scramResults is AlterUserScramCredentials' answer as user -> error code,
// checking each user is answered once.
func scramResults(t *testing.T, resp *kmsg.AlterUserSCRAMCredentialsResponse) map[string]int16 {
	t.Helper()
	out := map[string]int16{}
	for _, r := range resp.Results {
		if _, dup := out[r.User]; dup {
			t.Errorf("user %q answered twice", r.User)
		}
		out[r.User] = r.ErrorCode
	}
	return out
}

func TestSCRAMRoundTrip(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)

	alice := scramUpsert("alice", 1, 8192, "alice-secret")
	alice512 := scramUpsert("alice", 2, 4096, "alice-secret")
	bob := scramUpsert("bob", 2, 16384, "bob-secret")
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{alice, bob}
	if got := scramResults(t, rc.do(req).(*kmsg.AlterUserSCRAMCredentialsResponse)); got["alice"] != 0 || got["bob"] != 0 || len(got) != 2 {
		t.Fatalf("upsert results %v", got)
	}
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{alice512}
	if got := scramResults(t, rc.do(req).(*kmsg.AlterUserSCRAMCredentialsResponse)); got["alice"] != 0 {
		t.Fatalf("second alice upsert: %v", got)
	}

	// The stored credential is what a client proving the password needs.
	c, ok := ts.meta.ScramCredential("alice", 1)
	want := sasl.CredentialFromSalted(sasl.ScramSHA256, alice.Salt, alice.SaltedPassword, 8192)
	if !ok || c.Iterations != 8192 || !bytes.Equal(c.Salt, alice.Salt) || !bytes.Equal(c.StoredKey, want.StoredKey) || !bytes.Equal(c.ServerKey, want.ServerKey) {
		t.Fatalf("stored credential %+v (found %v), want keys derived from the salted password", c, ok)
	}

	// Describe all users: only mechanisms and iterations come back, which
	// the raw response bytes prove.
	desc := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	corr := rc.send(desc)
	gotCorr, body, err := rc.readFrame(10 * time.Second)
	if err != nil || gotCorr != corr {
		t.Fatalf("describe response: corr %d want %d, %v", gotCorr, corr, err)
	}
	resp := kmsg.NewPtrDescribeUserSCRAMCredentialsResponse()
	if err := resp.ReadFrom(body[1:]); err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || len(resp.Results) != 2 {
		t.Fatalf("describe all: %d %+v", resp.ErrorCode, resp.Results)
	}
	wantInfos := map[string][][2]int32{"alice": {{1, 8192}, {2, 4096}}, "bob": {{2, 16384}}}
	for _, r := range resp.Results {
		var got [][2]int32
		for _, ci := range r.CredentialInfos {
			got = append(got, [2]int32{int32(ci.Mechanism), ci.Iterations})
		}
		if r.ErrorCode != 0 || !slices.Equal(got, wantInfos[r.User]) {
			t.Errorf("user %s: %d %v, want %v", r.User, r.ErrorCode, got, wantInfos[r.User])
		}
	}
	for _, u := range []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{alice, alice512, bob} {
		stored, _ := ts.meta.ScramCredential(u.Name, u.Mechanism)
		for name, secret := range map[string][]byte{"salt": u.Salt, "salted password": u.SaltedPassword, "stored key": stored.StoredKey, "server key": stored.ServerKey} {
			if len(secret) == 0 {
				t.Fatalf("%s of %s is empty", name, u.Name)
			}
			if bytes.Contains(body, secret) {
				t.Errorf("DescribeUserScramCredentials leaks the %s of %s", name, u.Name)
			}
			// Neither may the audit log, in any common encoding.
			logged := capt.raw()
			for _, enc := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret)} {
				if strings.Contains(logged, enc) {
					t.Errorf("the log leaks the %s of %s", name, u.Name)
				}
			}
		}
	}

	lines := capt.lines(t, "AlterUserScramCredentials")
	if len(lines) != 3 {
		t.Fatalf("%d audit lines, want 3", len(lines))
	}
	if l := lines[0]; l["user"] != "alice" || l["mechanism"] != "SCRAM-SHA-256" || l["op"] != "upsert" || l["iterations"] != float64(8192) || l["outcome"] != "ok" {
		t.Errorf("audit line %v", l)
	}

	// Delete one mechanism of alice: the other stays.
	req = kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{scramDelete("alice", 1)}
	if got := scramResults(t, rc.do(req).(*kmsg.AlterUserSCRAMCredentialsResponse)); got["alice"] != 0 {
		t.Fatalf("delete: %v", got)
	}
	if _, ok := ts.meta.ScramCredential("alice", 1); ok {
		t.Error("alice's SCRAM-SHA-256 credential survived its deletion")
	}
	if _, ok := ts.meta.ScramCredential("alice", 2); !ok {
		t.Error("deleting SCRAM-SHA-256 took alice's SCRAM-SHA-512 credential too")
	}
	if l := capt.lines(t, "AlterUserScramCredentials"); len(l) != 4 || l[3]["op"] != "delete" || l[3]["outcome"] != "ok" {
		t.Errorf("delete audit line: %v", l)
	}
}

func TestSCRAMDescribeErrors(t *testing.T) {
	ts, _ := secServer(t, false, false)
	rc := ts.raw(t)
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{scramUpsert("alice", 1, 4096, "pw")}
	rc.do(req)

	desc := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	for _, u := range []string{"alice", "ghost", "twice", "twice"} {
		du := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
		du.Name = u
		desc.Users = append(desc.Users, du)
	}
	resp := rc.do(desc).(*kmsg.DescribeUserSCRAMCredentialsResponse)
	got := map[string]int16{}
	for _, r := range resp.Results {
		got[r.User] = r.ErrorCode
	}
	want := map[string]int16{"alice": 0, "ghost": kerr.ResourceNotFound.Code, "twice": kerr.DuplicateResource.Code}
	if len(resp.Results) != 3 || got["alice"] != want["alice"] || got["ghost"] != want["ghost"] || got["twice"] != want["twice"] {
		t.Errorf("results %v, want %v (one per distinct user)", got, want)
	}
}

func TestSCRAMAlterValidation(t *testing.T) {
	ts, capt := secServer(t, false, false)
	rc := ts.raw(t)
	setup := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	setup.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{scramUpsert("existing", 1, 4096, "pw")}
	rc.do(setup)

	noSalt := scramUpsert("nosalt", 1, 4096, "pw")
	noSalt.Salt = nil
	shortKey := scramUpsert("shortkey", 2, 4096, "pw")
	shortKey.SaltedPassword = shortKey.SaltedPassword[:32]

	type del = kmsg.AlterUserSCRAMCredentialsRequestDeletion
	type ups = kmsg.AlterUserSCRAMCredentialsRequestUpsertion
	for _, tc := range []struct {
		name    string
		dels    []del
		ups     []ups
		want    map[string]int16
		applied bool // the "ok" user's credential is stored
	}{
		{"too few iterations", nil, []ups{scramUpsert("u", 1, 4095, "pw")}, map[string]int16{"u": kerr.UnacceptableCredential.Code}, false},
		{"too many iterations", nil, []ups{scramUpsert("u", 2, 16385, "pw")}, map[string]int16{"u": kerr.UnacceptableCredential.Code}, false},
		{"unknown mechanism", nil, []ups{scramUpsert("u", 3, 4096, "pw")}, map[string]int16{"u": kerr.UnsupportedSaslMechanism.Code}, false},
		{"UNKNOWN mechanism", []del{scramDelete("existing", 0)}, nil, map[string]int16{"existing": kerr.UnsupportedSaslMechanism.Code}, false},
		{"empty user", nil, []ups{scramUpsert("", 1, 4096, "pw")}, map[string]int16{"": kerr.UnacceptableCredential.Code}, false},
		{"empty salt", nil, []ups{noSalt}, map[string]int16{"nosalt": kerr.UnacceptableCredential.Code}, false},
		{"salted password of the wrong size", nil, []ups{shortKey}, map[string]int16{"shortkey": kerr.UnacceptableCredential.Code}, false},
		{"delete missing", []del{scramDelete("ghost", 1), scramDelete("existing", 2)}, nil,
			map[string]int16{"ghost": kerr.ResourceNotFound.Code, "existing": kerr.ResourceNotFound.Code}, false},
		{"same user twice", nil, []ups{scramUpsert("dup", 1, 4096, "a"), scramUpsert("dup", 2, 4096, "b"), scramUpsert("ok", 1, 4096, "c")},
			map[string]int16{"dup": kerr.DuplicateResource.Code, "ok": 0}, true},
		{"delete and upsert of one user", []del{scramDelete("existing", 1)}, []ups{scramUpsert("existing", 2, 4096, "x"), scramUpsert("ok", 1, 4096, "c")},
			map[string]int16{"existing": kerr.DuplicateResource.Code, "ok": 0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ts.meta.ScramCredentials())
			req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			req.Deletions, req.Upsertions = tc.dels, tc.ups
			resp := rc.do(req).(*kmsg.AlterUserSCRAMCredentialsResponse)
			got := scramResults(t, resp)
			if len(got) != len(tc.want) {
				t.Errorf("results %v, want %v", got, tc.want)
			}
			for u, code := range tc.want {
				if got[u] != code {
					t.Errorf("user %q: %v, want %v", u, kerr.ErrorForCode(got[u]), kerr.ErrorForCode(code))
				}
			}
			for _, r := range resp.Results {
				if r.ErrorCode != 0 && (r.ErrorMessage == nil || *r.ErrorMessage == "") {
					t.Errorf("user %q refused without a reason", r.User)
				}
			}
			if _, ok := ts.meta.ScramCredential("existing", 1); !ok {
				t.Error("a refused request changed the existing credential")
			}
			if _, ok := ts.meta.ScramCredential("dup", 1); ok {
				t.Error("a duplicated user was stored")
			}
			if !tc.applied && len(ts.meta.ScramCredentials()) != before {
				t.Errorf("credentials %d -> %d after a refused request", before, len(ts.meta.ScramCredentials()))
			}
			if tc.applied {
				if _, ok := ts.meta.ScramCredential("ok", 1); !ok {
					t.Error("the valid user beside the refused one was not stored")
				}
			}
		})
	}
	var refused int
	for _, l := range capt.lines(t, "AlterUserScramCredentials") {
		if l["outcome"] != "ok" {
			refused++
		}
	}
	if refused == 0 {
		t.Error("refused SCRAM changes were not audited")
	}
}

func TestSCRAMClusterAuthorizationFailed(t *testing.T) {
	ts, capt := secServer(t, true, false)
	rc := ts.raw(t)
	req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	req.Deletions = []kmsg.AlterUserSCRAMCredentialsRequestDeletion{scramDelete("a", 1)}
	req.Upsertions = []kmsg.AlterUserSCRAMCredentialsRequestUpsertion{scramUpsert("a", 2, 4096, "x"), scramUpsert("b", 1, 4096, "y")}
	got := scramResults(t, rc.do(req).(*kmsg.AlterUserSCRAMCredentialsResponse))
	if len(got) != 2 || got["a"] != kerr.ClusterAuthorizationFailed.Code || got["b"] != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("results %v, want CLUSTER_AUTHORIZATION_FAILED for a and b", got)
	}
	if n := len(ts.meta.ScramCredentials()); n != 0 {
		t.Errorf("%d credentials stored by an unauthorized client", n)
	}
	if dr := rc.do(kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()).(*kmsg.DescribeUserSCRAMCredentialsResponse); dr.ErrorCode != kerr.ClusterAuthorizationFailed.Code {
		t.Errorf("describe: %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(dr.ErrorCode))
	}
	if l := capt.lines(t, "AlterUserScramCredentials"); len(l) != 3 || l[0]["outcome"] != "CLUSTER_AUTHORIZATION_FAILED" {
		t.Errorf("audit lines %v, want 3 refusals", l)
	}
}

// TestSCRAMKadm goes through franz-go's admin client, which salts the
// password client-side.
func TestSCRAMKadm(t *testing.T) {
	ts, _ := secServer(t, false, false)
	adm := kadm.NewClient(ts.client(t))
	ctx := context.Background()
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "carol-pw"},
	})
	if err != nil || altered.Error() != nil {
		t.Fatalf("alter: %v %v", err, altered.Error())
	}
	described, err := adm.DescribeUserSCRAMs(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	d := described["carol"]
	if d.Err != nil || len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha512 || d.CredInfos[0].Iterations != 8192 {
		t.Errorf("described %+v", d)
	}
	c, ok := ts.meta.ScramCredential("carol", 2)
	if !ok {
		t.Fatal("carol not stored")
	}
	// The stored keys verify the password kadm salted.
	salted := sasl.SaltPassword(sasl.ScramSHA512, "carol-pw", c.Salt, int(c.Iterations))
	if want := sasl.CredentialFromSalted(sasl.ScramSHA512, c.Salt, salted, int(c.Iterations)); !bytes.Equal(want.StoredKey, c.StoredKey) {
		t.Error("stored key does not verify the password")
	}
}
