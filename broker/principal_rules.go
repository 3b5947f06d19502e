package broker

// Principals from client certificates: the subject DN as Java prints it
// (X500Principal.getName(), RFC 2253) and Kafka's
// ssl.principal.mapping.rules applied to it, so ACLs written for an
// Apache Kafka cluster name the same principals here.
//
// Rules are DEFAULT (the whole DN) or RULE:pattern/replacement/[LU], tried
// in order; the first whose pattern matches the whole DN gives the name.
// Matching and replacing follow Java's Matcher.matches and
// String.replaceAll, quirks included ("(.*)" replaces twice). Differences
// from Apache Kafka:
//   - Patterns are RE2 (Go's regexp): look-around, back references inside
//     the pattern and possessive quantifiers are refused with a config error.
//   - A replacement that Java would reject when the rule is first used
//     ($ without a group number, a trailing backslash, a group the pattern
//     does not have when it has none, an unknown ${name}) is refused at start.
//   - Text Kafka's splitter silently skips (garbage before a line break) is
//     an error.
//   - A backslash in a replacement always quotes the next character (Kafka's
//     back-reference rewriting can turn "\$9" into a group reference).
//   - L and U use Go's Unicode case mapping (Java's turns "ß" into "SS").

import (
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// errNoPrincipalRule: no rule matched the DN. Kafka fails the
// authentication then; so do we (the connection is closed).
var errNoPrincipalRule = errors.New("no ssl.principal.mapping.rules rule matches the certificate subject")

// principalMapper is a parsed ssl.principal.mapping.rules; immutable, so
// connections share it without locking.
type principalMapper struct {
	rules []principalRule
}

type principalRule struct {
	isDefault    bool
	pattern      string         // as written, for String
	replacement  string         // as written
	full         *regexp.Regexp // \A(?:pattern)\z: Java's Matcher.matches
	re           *regexp.Regexp // pattern as written: what Java's replaceAll searches with
	nullable     bool           // the pattern may match "", see javaReplaceAll
	parts        []replPart
	lower, upper bool
}

// replPart is a piece of a parsed replacement: literal text, or a group
// (group >= 0) whose text is inserted.
type replPart struct {
	lit   string
	group int
}

// parsePrincipalRules splits and compiles ssl.principal.mapping.rules the
// way Kafka's SslPrincipalMapper does: comma-separated rules, but a RULE's
// pattern and replacement may themselves contain commas (they end at an
// unescaped '/'); empty entries are ignored.
func parsePrincipalRules(s string) (*principalMapper, error) {
	m := &principalMapper{}
	s = strings.TrimFunc(s, func(r rune) bool { return r <= ' ' }) // Java's String.trim
	for i := 0; ; {
		for i < len(s) && isJavaSpace(s[i]) {
			i++
		}
		if i >= len(s) {
			return m, nil
		}
		start := i
		if r, end, ok := scanRule(s, i); ok {
			comma := indexFrom(s, ',', end)
			if extra := strings.TrimRightFunc(s[end:comma], isJavaSpaceRune); extra != "" {
				return nil, fmt.Errorf("invalid rule %q: unexpected %q after it", s[start:end], extra)
			}
			if err := r.compile(); err != nil {
				return nil, err
			}
			m.rules = append(m.rules, r)
			i = comma + 1
			continue
		}
		comma := indexFrom(s, ',', i)
		switch tok := strings.TrimRightFunc(s[i:comma], isJavaSpaceRune); tok {
		case "":
		case "DEFAULT":
			m.rules = append(m.rules, principalRule{isDefault: true})
		default:
			return nil, fmt.Errorf("invalid rule %q: want DEFAULT or RULE:pattern/replacement/ with an optional L or U", tok)
		}
		i = comma + 1
	}
}

// scanRule reads RULE:pattern/replacement/[LU] at s[i:]. Pattern and
// replacement run to the next '/' that no backslash quotes.
func scanRule(s string, i int) (principalRule, int, bool) {
	const prefix = "RULE:"
	if !strings.HasPrefix(s[i:], prefix) {
		return principalRule{}, 0, false
	}
	j := i + len(prefix)
	var fields [2]string
	for f := range fields {
		start := j
		for {
			if j >= len(s) {
				return principalRule{}, 0, false
			}
			c := s[j]
			if c == '/' {
				break
			}
			if c == '\\' {
				// Java's '.' in the splitter does not match line breaks.
				if j+1 >= len(s) || s[j+1] == '\n' || s[j+1] == '\r' {
					return principalRule{}, 0, false
				}
				_, n := utf8.DecodeRuneInString(s[j+1:])
				j += 1 + n
				continue
			}
			j++
		}
		fields[f] = s[start:j]
		j++ // the '/'
	}
	r := principalRule{pattern: fields[0], replacement: fields[1]}
	if j < len(s) {
		switch s[j] {
		case 'L':
			r.lower = true
			j++
		case 'U':
			r.upper = true
			j++
		}
	}
	return r, j, true
}

func (r *principalRule) compile() error {
	var err error
	if r.re, err = regexp.Compile(r.pattern); err != nil {
		return fmt.Errorf("rule %s: pattern is not a valid (RE2) regular expression: %w", r, err)
	}
	if r.full, err = regexp.Compile(`\A(?:` + r.pattern + `)\z`); err != nil {
		return fmt.Errorf("rule %s: %w", r, err)
	}
	if re, err := syntax.Parse(r.pattern, syntax.Perl); err == nil {
		r.nullable = mayMatchEmpty(re)
	}
	if r.parts, err = parseReplacement(r.replacement, r.re); err != nil {
		return fmt.Errorf("rule %s: %w", r, err)
	}
	return nil
}

// parseReplacement reads a replacement as Java's Matcher.appendReplacement
// does after Kafka has quoted back references to groups the pattern lacks:
// "\x" is a literal x, "$n" a group (the longest run of digits that still
// names an existing group), "${name}" a named group.
func parseReplacement(s string, re *regexp.Regexp) ([]replPart, error) {
	groups := re.NumSubexp()
	var parts []replPart
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, replPart{lit: lit.String(), group: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New(`replacement ends with a lone backslash`)
			}
			_, n := utf8.DecodeRuneInString(s[i+1:])
			lit.WriteString(s[i+1 : i+1+n])
			i += 1 + n
		case c == '$':
			if i+1 >= len(s) {
				return nil, errors.New(`replacement ends with "$" (write \$ for a dollar sign)`)
			}
			if s[i+1] == '{' {
				end := strings.IndexByte(s[i+2:], '}')
				if end < 0 {
					return nil, errors.New(`replacement has "${" without a closing "}"`)
				}
				name := s[i+2 : i+2+end]
				g := re.SubexpIndex(name)
				if g < 0 {
					return nil, fmt.Errorf("replacement names group %q, which the pattern does not have", name)
				}
				flush()
				parts = append(parts, replPart{group: g})
				i += 3 + end
				continue
			}
			digits := i + 1
			for digits < len(s) && s[digits] >= '0' && s[digits] <= '9' {
				digits++
			}
			if digits == i+1 {
				return nil, fmt.Errorf(`replacement has "$" followed by %q, not a group number (write \$ for a dollar sign)`, s[i+1])
			}
			if groups == 0 && s[i+1] != '0' {
				return nil, fmt.Errorf("replacement refers to group %s but the pattern has no groups", s[i+1:digits])
			}
			if s[i+1] != '0' && !refersToGroup(s[i+1:digits], groups) {
				// Kafka quotes a reference to a group that does not exist, so
				// "$7" with fewer groups is the text "$7".
				lit.WriteByte('$')
				i++
				continue
			}
			// Java: the first digit, then more while they name a group.
			g, j := int(s[i+1]-'0'), i+2
			for j < digits {
				next := g*10 + int(s[j]-'0')
				if next > groups {
					break
				}
				g, j = next, j+1
			}
			flush()
			parts = append(parts, replPart{group: g})
			i = j
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return parts, nil
}

// refersToGroup applies Kafka's rule for "$<digits>": drop trailing digits
// while the number names no group and has more than one digit.
func refersToGroup(digits string, groups int) bool {
	n := 0
	for _, c := range digits {
		n = n*10 + int(c-'0')
		if n > 1<<30 {
			n = 1 << 30 // only "more than groups" matters
		}
	}
	for n > groups && n >= 10 {
		n /= 10
	}
	return n <= groups
}

// name maps a DN to the principal name (without "User:").
func (m *principalMapper) name(dn string) (string, error) {
	for i := range m.rules {
		if out, ok := m.rules[i].apply(dn); ok {
			return out, nil
		}
	}
	return "", fmt.Errorf("%w (subject %q, rules %s)", errNoPrincipalRule, dn, m)
}

func (r *principalRule) apply(dn string) (string, bool) {
	if r.isDefault {
		return dn, true
	}
	if !r.full.MatchString(dn) {
		return "", false
	}
	out := r.javaReplaceAll(dn)
	switch {
	case r.lower:
		out = strings.ToLower(out)
	case r.upper:
		out = strings.ToUpper(out)
	}
	return out, true
}

// javaReplaceAll is Java's String.replaceAll with the parsed replacement.
// Go's regexp finds the same successive matches as Java's Matcher.find,
// except that Java also accepts an empty match right where a non-empty one
// ended (so "(.*)" replaces twice in Java). Those extra matches are found
// by matching at that position with the text before it as context.
func (r *principalRule) javaReplaceAll(s string) string {
	var b strings.Builder
	last := 0
	extra := func(at int) {
		if m := r.emptyMatchAt(s, at); m != nil {
			b.WriteString(s[last:at])
			r.expand(&b, s, m)
			last = at
		}
	}
	prevEnd, prevNonEmpty := -1, false
	for _, m := range r.re.FindAllStringSubmatchIndex(s, -1) {
		if prevNonEmpty && m[0] != prevEnd {
			extra(prevEnd)
		}
		b.WriteString(s[last:m[0]])
		r.expand(&b, s, m)
		last, prevEnd, prevNonEmpty = m[1], m[1], m[1] > m[0]
	}
	if prevNonEmpty {
		extra(prevEnd)
	}
	b.WriteString(s[last:])
	return b.String()
}

// emptyMatchAt returns the submatch indexes of the pattern's preferred
// match starting at at, if that match is empty.
func (r *principalRule) emptyMatchAt(s string, at int) []int {
	if !r.nullable {
		return nil
	}
	re, err := regexp.Compile(`\A(?:` + regexp.QuoteMeta(s[:at]) + `)(?:` + r.pattern + `)`)
	if err != nil {
		return nil
	}
	m := re.FindStringSubmatchIndex(s)
	if m == nil || m[1] != at {
		return nil
	}
	return m
}

func (r *principalRule) expand(b *strings.Builder, s string, m []int) {
	for _, p := range r.parts {
		if p.group < 0 {
			b.WriteString(p.lit)
		} else if lo, hi := m[2*p.group], m[2*p.group+1]; lo >= 0 {
			b.WriteString(s[lo:hi]) // a group that did not take part adds nothing, as in Java
		}
	}
}

// mayMatchEmpty reports whether re could match the empty string somewhere
// (assertions are assumed to hold: a cheap, conservative filter).
func mayMatchEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return mayMatchEmpty(re.Sub[0])
	case syntax.OpRepeat:
		return re.Min == 0 || mayMatchEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !mayMatchEmpty(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if mayMatchEmpty(sub) {
				return true
			}
		}
	}
	return false
}

// String prints the rules as Kafka's SslPrincipalMapper.toString does, so
// operators can see how their setting was split.
func (m *principalMapper) String() string {
	rs := make([]string, len(m.rules))
	for i := range m.rules {
		rs[i] = m.rules[i].String()
	}
	return "[" + strings.Join(rs, ", ") + "]"
}

func (r *principalRule) String() string {
	if r.isDefault {
		return "DEFAULT"
	}
	s := "RULE:" + r.pattern + "/" + r.replacement
	switch {
	case r.lower:
		s += "/L"
	case r.upper:
		s += "/U"
	}
	return s
}

func isJavaSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\x0b' || c == '\f' || c == '\r'
}

func isJavaSpaceRune(r rune) bool { return r < utf8.RuneSelf && isJavaSpace(byte(r)) }

// indexFrom is the index of the first c in s at or after i, or len(s).
func indexFrom(s string, c byte, i int) int {
	if j := strings.IndexByte(s[i:], c); j >= 0 {
		return i + j
	}
	return len(s)
}

// Subject DNs.

// rdnAttr is one AttributeTypeAndValue with its value kept raw: Java
// prints values of unknown types (and of attributes it has no RFC 2253
// keyword for) as '#' and the hex of their DER encoding.
type rdnAttr struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rdnSET is one relative distinguished name (encoding/asn1 decodes a
// slice type whose name ends in SET as a SET OF).
type rdnSET []rdnAttr

// rfc2253Keywords are the attribute types Java's X500Principal names in
// RFC 2253 output; every other type is printed as its dotted OID.
var rfc2253Keywords = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.9":                    "STREET",
	"0.9.2342.19200300.100.1.25": "DC",
	"0.9.2342.19200300.100.1.1":  "UID",
}

// subjectDN renders a DER-encoded X.501 Name (x509.Certificate.RawSubject)
// exactly as Java's X500Principal.getName() does: RDNs last to first,
// separated by ',', multi-valued RDNs joined by '+' in encoded order,
// string values with ,=+<>#;"\ quoted by a backslash, NUL as \00, leading
// and trailing spaces and CRs quoted, and values Java has no string form
// for as #hex of their DER encoding.
func subjectDN(raw []byte) (string, error) {
	var rdns []rdnSET
	rest, err := asn1.Unmarshal(raw, &rdns)
	if err != nil {
		return "", fmt.Errorf("parse certificate subject: %w", err)
	}
	if len(rest) > 0 {
		return "", errors.New("parse certificate subject: trailing data")
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if len(rdns[i]) == 0 {
			return "", errors.New("parse certificate subject: empty relative distinguished name")
		}
		if i < len(rdns)-1 {
			b.WriteByte(',')
		}
		for j, a := range rdns[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			writeAttr(&b, a)
		}
	}
	return b.String(), nil
}

func writeAttr(b *strings.Builder, a rdnAttr) {
	oid := a.Type.String()
	kw, ok := rfc2253Keywords[oid]
	if !ok {
		kw = oid
	}
	b.WriteString(kw)
	b.WriteByte('=')
	if !ok || !javaStringTag(a.Value) {
		b.WriteByte('#')
		b.WriteString(hex.EncodeToString(a.Value.FullBytes))
		return
	}
	// Java decodes every string type's bytes as UTF-8 (even BMPString).
	var esc strings.Builder
	for v := a.Value.Bytes; len(v) > 0; {
		r, n := utf8.DecodeRune(v)
		v = v[n:]
		switch {
		case r == 0:
			esc.WriteString(`\00`)
		case strings.ContainsRune(`,=+<>#;"\`, r):
			esc.WriteByte('\\')
			esc.WriteRune(r)
		default:
			esc.WriteRune(r)
		}
	}
	s := esc.String()
	ws := func(c byte) bool { return c == ' ' || c == '\r' }
	lead, trail := 0, len(s)-1
	for lead < len(s) && ws(s[lead]) {
		lead++
	}
	for trail >= 0 && ws(s[trail]) {
		trail--
	}
	for i := 0; i < len(s); i++ {
		if i < lead || i > trail {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}

// javaStringTag: the universal string types Java prints as text in RFC
// 2253 form (not VisibleString or UniversalString, which it prints as hex).
func javaStringTag(v asn1.RawValue) bool {
	if v.Class != asn1.ClassUniversal || v.IsCompound {
		return false
	}
	switch v.Tag {
	case asn1.TagPrintableString, asn1.TagT61String, asn1.TagIA5String, 27 /* GeneralString */, asn1.TagBMPString, asn1.TagUTF8String:
		return true
	}
	return false
}
