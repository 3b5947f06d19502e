// Package coordkey maps a group id or transactional id to the partition of
// its internal topic (__consumer_offsets, __transaction_state), exactly as
// Kafka does, so a cluster mixing Strata and Kafka tools agrees on which
// broker coordinates what.
package coordkey

// Partition is Kafka's Utils.abs(key.hashCode()) % partitions: Java's
// String.hashCode over UTF-16 code units, with Utils.abs mapping MinInt32
// to 0. partitions must be >= 1.
func Partition(key string, partitions int32) int32 {
	h := JavaStringHash(key)
	if h == -1<<31 {
		h = 0
	} else if h < 0 {
		h = -h
	}
	return h % partitions
}

// JavaStringHash is Java's String.hashCode over UTF-16 code units.
func JavaStringHash(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 { // outside the BMP: a UTF-16 surrogate pair
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r) // invalid UTF-8 decodes to U+FFFD, as Java's decoder does
	}
	return h
}
