package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// Kafka's own examples (SslPrincipalMapperTest) must split the same way:
// String prints what Kafka's toString prints.
func TestPrincipalRulesSplitting(t *testing.T) {
	for _, tc := range []struct{ rules, want string }{
		{"", "[]"},
		{"DEFAULT", "[DEFAULT]"},
		{"RULE://", "[RULE:/]"},
		{"RULE:/.*/", "[RULE:/.*]"},
		{"RULE:/.*/L", "[RULE:/.*/L]"},
		{"RULE://,DEFAULT", "[RULE:/, DEFAULT]"},
		{"  RULE:// ,  DEFAULT  ", "[RULE:/, DEFAULT]"},
		{"  RULE:   /     / ,  DEFAULT  ", "[RULE:   /     , DEFAULT]"},
		{"  RULE:  /     /U   ,DEFAULT  ", "[RULE:  /     /U, DEFAULT]"},
		{"  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ", "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]"},
		{",   , , ,      , , ,   ", "[]"},
		{",,RULE://,,,DEFAULT,,", "[RULE:/, DEFAULT]"},
		{",  , RULE: /   /    ,,,   DEFAULT, ,   ", "[RULE: /   , DEFAULT]"},
		{"     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,", "[RULE:   /  /U, DEFAULT]"},
		{`RULE:\/\\\(\)\n\t/\/\//`, `[RULE:\/\\\(\)\n\t/\/\/]`},
		{`RULE:\**\/+/*/L,RULE:\/*\**/**/`, `[RULE:\**\/+/*/L, RULE:\/*\**/**]`},
		{`RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT`,
			`[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]`},
		// Kafka's valid examples.
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT", "[RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT]"},
		{"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/", "[RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2]"},
		{"RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/", "[RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1]"},
		{"RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/", "[RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1]"},
	} {
		t.Run(tc.rules, func(t *testing.T) {
			m, err := parsePrincipalRules(tc.rules)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if got := m.String(); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPrincipalRulesInvalid(t *testing.T) {
	for _, tc := range []struct{ rules, why string }{
		{"default", "DEFAULT is upper-case"},
		{"DEFAUL", "not a rule"},
		{"DEFAULT/L", "DEFAULT takes no case flag"},
		{"DEFAULT/U", "DEFAULT takes no case flag"},
		{"RULE:CN=(.*?),OU=ServiceUsers.*/$1", "no closing slash"},
		{"rule:^CN=(.*?),OU=ServiceUsers.*$/$1/", "RULE is upper-case"},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U", "two flags"},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/L", "no replacement"},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/U", "no replacement"},
		{"RULE:^CN=(.*?),OU=ServiceUsers.*$/LU", "no replacement"},
		{"DEFAULT,RULE:^CN=(.*)$/$1/X", "unknown flag"},
		{"garbage\nDEFAULT", "Kafka skips the garbage; we do not"},
		// Ours: refused at start rather than failing every handshake.
		{"RULE:^CN=(?=x).*$/$0/", "look-ahead is not RE2"},
		{"RULE:^CN=(a$/$1/", "unbalanced parenthesis"},
		{"RULE:^CN=.*$/$1/", "no groups to refer to"},
		{"RULE:^CN=(.*)$/$/", "lone dollar"},
		{"RULE:^CN=(.*)$/$x/", "dollar without a number"},
		{"RULE:^CN=(.*)$/${nope}/", "unknown named group"},
		{"RULE:^CN=(.*)$/${1/", "unclosed named group"},
	} {
		t.Run(tc.why, func(t *testing.T) {
			if m, err := parsePrincipalRules(tc.rules); err == nil {
				t.Errorf("%q parsed as %s", tc.rules, m)
			}
		})
	}
}

func TestPrincipalRulesApply(t *testing.T) {
	kafka := strings.Join([]string{
		"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
		"RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
		"RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
		"RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
		"DEFAULT",
	}, ", ")
	for _, tc := range []struct {
		name, rules, dn, want string
	}{
		// Kafka's SslPrincipalMapperTest expectations.
		{"first rule, lower-cased", kafka, "CN=Duke,OU=ServiceUsers,O=Org,C=US", "duke"},
		{"second rule", kafka, "CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US", "duke@sme"},
		{"third rule, upper-cased", kafka, "cn=duke,ou=sme,dc=mycp,dc=com", "DUKE@SME"},
		{"fourth rule", kafka, "cN=duke,OU=JavaSoft,O=Sun Microsystems", "DUKE"},
		{"DEFAULT", kafka, "OU=JavaSoft,O=Sun Microsystems,C=US", "OU=JavaSoft,O=Sun Microsystems,C=US"},
		{"escaped comma in the CN", `RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT`, `CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz`, `Tkac\, Adam`},

		// The pattern must match the whole DN: a partial match falls through.
		{"whole DN only", "RULE:CN=(\\w+)/$1/,DEFAULT", "CN=duke,O=x", "CN=duke,O=x"},
		// Java's replaceAll quirks.
		{"empty match after a full one", "RULE:(.*)/x$1/", "CN=a", "xCN=ax"},
		{"lazy empty matches", "RULE:(.*?)/[$1]/", "ab", "[]a[]b[]"},
		{"digits after a group", `RULE:^CN=(\w+).*$/$12/`, "CN=duke,O=x", "duke2"},
		{"missing group is literal", `RULE:^CN=(\w+).*$/$1-$3/`, "CN=duke,O=x", "duke-$3"},
		{"quoted dollar", `RULE:^CN=(\w+).*$/\$1 $1/`, "CN=duke,O=x", "$1 duke"},
		{"group 0", `RULE:^CN=\w+/<$0>/`, "CN=duke", "<CN=duke>"},
		{"named group", `RULE:^CN=(?<user>\w+).*$/${user}/`, "CN=duke,O=x", "duke"},
		{"unused group adds nothing", `RULE:^CN=(a)?(\w+)$/[$1]$2/`, "CN=bob", "[]bob"},
		{"escaped slash in the pattern", `RULE:^CN=(\w+)\/(\w+)$/$2/`, "CN=a/b", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parsePrincipalRules(tc.rules)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.rules, err)
			}
			got, err := m.name(tc.dn)
			if err != nil || got != tc.want {
				t.Errorf("name(%q) = %q, %v; want %q", tc.dn, got, err, tc.want)
			}
		})
	}

	for _, rules := range []string{"", "RULE:^CN=(x)$/$1/"} {
		m, err := parsePrincipalRules(rules)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := m.name("CN=duke"); !errors.Is(err, errNoPrincipalRule) {
			t.Errorf("rules %q: name = %q, %v; want errNoPrincipalRule", rules, got, err)
		}
	}
}

// Subjects are printed as Java's X500Principal.getName() prints them, the
// string Kafka's rules and ACLs are written against.
func TestSubjectDN(t *testing.T) {
	var (
		oidC, oidST, oidL        = asn1.ObjectIdentifier{2, 5, 4, 6}, asn1.ObjectIdentifier{2, 5, 4, 8}, asn1.ObjectIdentifier{2, 5, 4, 7}
		oidO, oidOU, oidCN       = asn1.ObjectIdentifier{2, 5, 4, 10}, asn1.ObjectIdentifier{2, 5, 4, 11}, asn1.ObjectIdentifier{2, 5, 4, 3}
		oidDC, oidUID            = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
		oidEmail, oidTitle, oidS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, asn1.ObjectIdentifier{2, 5, 4, 12}, asn1.ObjectIdentifier{2, 5, 4, 9}
	)
	attr := func(oid asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: oid, Value: v}
	}
	one := func(a pkix.AttributeTypeAndValue) []pkix.AttributeTypeAndValue {
		return []pkix.AttributeTypeAndValue{a}
	}
	for _, tc := range []struct {
		name string
		rdns pkix.RDNSequence // in encoded order (the first is printed last)
		want string
	}{
		{"openssl -subj /C=US/ST=CA/L=Cupertino/O=Sun Microsystems/OU=JavaSoft/CN=Duke", pkix.RDNSequence{
			one(attr(oidC, "US")), one(attr(oidST, "CA")), one(attr(oidL, "Cupertino")),
			one(attr(oidO, "Sun Microsystems")), one(attr(oidOU, "JavaSoft")), one(attr(oidCN, "Duke")),
		}, "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Cupertino,ST=CA,C=US"},
		{"special characters", pkix.RDNSequence{one(attr(oidCN, ` #x,y+z=w<v>u;t"s\r `))},
			`CN=\ \#x\,y\+z\=w\<v\>u\;t\"s\\r\ `},
		{"NUL", pkix.RDNSequence{one(attr(oidCN, "a\x00b"))}, `CN=a\00b`},
		{"all spaces", pkix.RDNSequence{one(attr(oidCN, "  "))}, `CN=\ \ `},
		{"not escaped", pkix.RDNSequence{one(attr(oidCN, "é_@!*&|' ()-./:?"))}, `CN=é_@!*&|' ()-./:?`},
		{"DC and UID keywords", pkix.RDNSequence{one(attr(oidDC, "com")), one(attr(oidDC, "example")), one(attr(oidUID, "jdoe"))},
			"UID=jdoe,DC=example,DC=com"},
		{"STREET keyword", pkix.RDNSequence{one(attr(oidS, "Main St"))}, "STREET=Main St"},
		{"emailAddress as an OID with hex", pkix.RDNSequence{one(attr(oidEmail, asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("test@example.com")})), one(attr(oidCN, "x"))},
			"CN=x,1.2.840.113549.1.9.1=#161074657374406578616d706c652e636f6d"},
		{"title as an OID with hex", pkix.RDNSequence{one(attr(oidTitle, "Boss"))}, "2.5.4.12=#1304426f7373"},
		{"VisibleString is hex", pkix.RDNSequence{one(attr(oidCN, asn1.RawValue{Tag: 26, Bytes: []byte("A")}))}, "CN=#1a0141"},
		{"IA5String under a keyword is text", pkix.RDNSequence{one(attr(oidCN, asn1.RawValue{Tag: asn1.TagIA5String, Bytes: []byte("a@b")}))}, "CN=a@b"},
		{"multi-valued RDN", pkix.RDNSequence{{attr(oidCN, "a"), attr(oidOU, "b")}, one(attr(oidO, "o"))}, "O=o,CN=a+OU=b"},
		{"empty", pkix.RDNSequence{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := asn1.Marshal(tc.rdns)
			if err != nil {
				t.Fatal(err)
			}
			got, err := subjectDN(raw)
			if err != nil || got != tc.want {
				t.Errorf("subjectDN = %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	// What Go itself writes for a pkix.Name round-trips through a real
	// certificate.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		Subject: pkix.Name{CommonName: "Duke", OrganizationalUnit: []string{"JavaSoft"}, Organization: []string{"Sun Microsystems"},
			Locality: []string{"Cupertino"}, Province: []string{"CA"}, Country: []string{"US"}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	// Go encodes C, ST, L, O, OU, CN in that order; Java prints it reversed.
	if got, err := subjectDN(cert.RawSubject); err != nil || got != "CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Cupertino,ST=CA,C=US" {
		t.Errorf("subject of a Go certificate = %q, %v", got, err)
	}

	for _, bad := range [][]byte{nil, {0x30}, {0x30, 0x00, 0x00}, {0x04, 0x00}} {
		if got, err := subjectDN(bad); err == nil {
			t.Errorf("subjectDN(%x) = %q, want an error", bad, got)
		}
	}
}

// canonicalRules prints rules so that they parse back to the same rules
// (Kafka's String drops a RULE's last slash when it has no flag).
func canonicalRules(m *principalMapper) string {
	var parts []string
	for _, r := range m.rules {
		if r.isDefault {
			parts = append(parts, "DEFAULT")
			continue
		}
		s := "RULE:" + r.pattern + "/" + r.replacement + "/"
		if r.lower {
			s += "L"
		} else if r.upper {
			s += "U"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func FuzzPrincipalRules(f *testing.F) {
	f.Add("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT", "CN=Duke,OU=ServiceUsers,O=Org,C=US")
	f.Add(`RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,DEFAULT`, "CN=a")
	f.Add("RULE:(.*)/x$1/", "CN=a")
	f.Add(`RULE:^CN=(?<u>\w+)$/${u}$12\$/U`, "CN=x")
	f.Fuzz(func(t *testing.T, rules, dn string) {
		m, err := parsePrincipalRules(rules)
		if err != nil {
			return
		}
		again, err := parsePrincipalRules(canonicalRules(m))
		if err != nil {
			t.Fatalf("%q parsed, its canonical form %q does not: %v", rules, canonicalRules(m), err)
		}
		if again.String() != m.String() {
			t.Fatalf("%q: %s, reparsed %s", rules, m, again)
		}
		if len(dn) > 512 {
			return // keeps regexp work per input small
		}
		name, err := m.name(dn)
		if err != nil && !errors.Is(err, errNoPrincipalRule) {
			t.Fatalf("name(%q): %v", dn, err)
		}
		if err == nil && len(m.rules) > 0 && m.rules[0].isDefault && name != dn {
			t.Fatalf("DEFAULT first gave %q for %q", name, dn)
		}
	})
}

func FuzzSubjectDN(f *testing.F) {
	raw, _ := asn1.Marshal(pkix.Name{CommonName: "a,b", Organization: []string{"o"}}.ToRDNSequence())
	f.Add(raw)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		dn, err := subjectDN(raw)
		if err == nil && !strings.Contains(dn, "=") && dn != "" {
			t.Fatalf("subjectDN(%x) = %q: no attribute", raw, dn)
		}
	})
}
