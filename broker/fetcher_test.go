package broker

import (
	"encoding/binary"
	"testing"
)

// FuzzWholeBatches: a follower trims whatever a leader (or anything
// answering on its port) sends to whole batches by their length fields;
// the result is always a prefix made of whole frames, and nothing panics.
func FuzzWholeBatches(f *testing.F) {
	f.Add([]byte{})
	f.Add(batchOf(1, 0, 0, "a", "b"))
	f.Add(append(batchOf(1, 0, 0, "a"), batchOf(1, 0, 1, "b")[:20]...))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		out := wholeBatches(b)
		if len(out) > len(b) || string(out) != string(b[:len(out)]) {
			t.Fatalf("not a prefix: %d of %d bytes", len(out), len(b))
		}
		for p := 0; p < len(out); {
			if len(out)-p < 12 {
				t.Fatalf("a partial frame header at %d", p)
			}
			size := int(int32(binary.BigEndian.Uint32(out[p+8:])))
			if size <= 0 || p+12+size > len(out) {
				t.Fatalf("frame at %d of size %d does not fit", p, size)
			}
			p += 12 + size
		}
	})
}

// FuzzSkipTags: a response header's tagged fields from another broker
// are skipped without reading past the buffer.
func FuzzSkipTags(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{1, 0, 2, 'h', 'i', 9})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, rest, err := skipTags(b)
		if err == nil && len(rest) > len(b) {
			t.Fatalf("rest %d bytes of %d", len(rest), len(b))
		}
	})
}
