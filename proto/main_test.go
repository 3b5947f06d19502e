package proto

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no codec (zstd, lz4) leaves goroutines behind: the
// package promises to start none.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// testRecords makes n records with valueSize-byte values (half random,
// half repetitive so compression has something to do), varied keys and
// headers, including null and empty fields.
func testRecords(rng *rand.Rand, n, valueSize int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		r.TimestampDelta = int64(i * 3)
		switch i % 3 {
		case 0:
			r.Key = nil
		case 1:
			r.Key = []byte{}
		default:
			r.Key = []byte(fmt.Sprintf("key-%d", i))
		}
		v := make([]byte, valueSize)
		for j := range v[:valueSize/2] {
			v[j] = byte(rng.IntN(256))
		}
		copy(v[valueSize/2:], bytes.Repeat([]byte("strata"), valueSize))
		r.Value = v
		if i%4 == 1 {
			r.Value = nil
		}
		if i%2 == 0 {
			r.Headers = []Header{{Key: "h1", Value: []byte("v1")}, {Key: "", Value: nil}, {Key: "h3", Value: []byte{}}}
		}
	}
	return recs
}

func idempotentSpec(c Codec) BatchSpec {
	return BatchSpec{
		FirstTimestamp: 1_700_000_000_000,
		ProducerID:     42,
		ProducerEpoch:  3,
		BaseSequence:   7,
		Codec:          c,
	}
}
