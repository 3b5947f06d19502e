package coordkey

import "testing"

func TestPartitionMatchesKafka(t *testing.T) {
	// Hashes and partitions computed with Java: String.hashCode() and
	// Kafka's Utils.abs(n) = (n == MIN_VALUE) ? 0 : Math.abs(n).
	cases := []struct {
		group  string
		hash   int32
		p50    int32
		p7     int32
		reason string
	}{
		{"", 0, 0, 0, "empty"},
		{"a", 97, 47, 6, "one char"},
		{"my-group", -1906497762, 12, 1, "negative hash: abs, not a sign mask"},
		{"console-consumer-8010", 836602008, 8, 4, "positive"},
		{"polygenelubricants", -2147483648, 0, 0, "MinInt32 maps to 0"},
		{"test-group-negative-zz", -1776400113, 13, 5, "negative"},
		{"gr\u00fcppe", -1233264812, 12, 3, "non-ASCII BMP"},
		{"\U0001F600group", -1231696132, 32, 2, "surrogate pair"},
		{"strata", -891993411, 11, 1, "negative"},
		{"GROUP_NEG_xyzzy123", -1380951959, 9, 2, "negative"},
	}
	for _, tc := range cases {
		t.Run(tc.reason+"/"+tc.group, func(t *testing.T) {
			if h := JavaStringHash(tc.group); h != tc.hash {
				t.Fatalf("hash %d want %d", h, tc.hash)
			}
			if p := Partition(tc.group, 50); p != tc.p50 {
				t.Fatalf("partition of 50: %d want %d", p, tc.p50)
			}
			if p := Partition(tc.group, 7); p != tc.p7 {
				t.Fatalf("partition of 7: %d want %d", p, tc.p7)
			}
		})
	}
}
