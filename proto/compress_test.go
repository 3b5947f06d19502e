package proto

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func TestCompressRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	inputs := map[string][]byte{
		"empty":         {},
		"one byte":      {7},
		"random 100k":   randBytes(rng, 100<<10),
		"repetitive 3M": bytes.Repeat([]byte("kafka strata "), 3<<20/13),
	}
	for _, c := range allCodecs {
		for name, in := range inputs {
			t.Run(fmt.Sprintf("%s/%s", c, name), func(t *testing.T) {
				z, err := Compress(c, []byte("dst"), in)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(z, []byte("dst")) {
					t.Fatal("dst prefix lost")
				}
				out, err := DecompressLimit(c, []byte("pre"), z[3:], len(in))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out[3:], in) || string(out[:3]) != "pre" {
					t.Fatalf("round trip: %d bytes, want %d", len(out)-3, len(in))
				}
				if len(in) > 0 && c != CodecNone {
					// One byte under the size is a bomb by definition.
					if _, err := DecompressLimit(c, nil, z[3:], len(in)-1); !errors.Is(err, ErrCorrupt) {
						t.Fatalf("limit %d: err = %v", len(in)-1, err)
					}
				}
			})
		}
	}
}

// Other encoders' output decodes: what Java, librdkafka, sarama and
// franz-go may send.
func TestDecompressForeignEncodings(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	in := append(randBytes(rng, 70<<10), bytes.Repeat([]byte("abc"), 50<<10)...)

	var gz bytes.Buffer
	w := stdgzip.NewWriter(&gz)
	w.Write(in)
	w.Close()

	var lz bytes.Buffer
	lw := lz4.NewWriter(&lz) // default: 4 MiB blocks, content checksum
	lw.Write(in)
	lw.Close()

	zs, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1))
	zdata := zs.EncodeAll(in, nil)
	zs.Close()
	var zstream bytes.Buffer // streaming frames carry no content size
	zw, _ := zstd.NewWriter(&zstream, zstd.WithEncoderConcurrency(1))
	zw.Write(in)
	zw.Close()

	// Xerial with small, odd-sized blocks.
	xerial := append([]byte{}, xerialMagic...)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	xerial = binary.BigEndian.AppendUint32(xerial, 1)
	for rest := in; len(rest) > 0; {
		n := min(len(rest), 1000+rng.IntN(9000))
		blk := snappy.Encode(nil, rest[:n])
		xerial = binary.BigEndian.AppendUint32(xerial, uint32(len(blk)))
		xerial = append(xerial, blk...)
		rest = rest[n:]
	}

	tests := []struct {
		name string
		c    Codec
		data []byte
	}{
		{"stdlib gzip", CodecGzip, gz.Bytes()},
		{"two gzip members", CodecGzip, append(bytes.Clone(gz.Bytes()), gz.Bytes()...)},
		{"lz4 default frame", CodecLZ4, lz.Bytes()},
		{"zstd EncodeAll level 4", CodecZstd, zdata},
		{"zstd stream", CodecZstd, zstream.Bytes()},
		{"raw snappy block", CodecSnappy, snappy.Encode(nil, in)},
		{"xerial snappy", CodecSnappy, xerial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Decompress(tt.c, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			want := in
			if tt.name == "two gzip members" {
				want = append(bytes.Clone(in), in...)
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("got %d bytes, want %d", len(out), len(want))
			}
		})
	}
}

func TestDecompressBad(t *testing.T) {
	good := map[Codec][]byte{}
	for _, c := range allCodecs[1:] {
		z, err := Compress(c, nil, bytes.Repeat([]byte("0123456789"), 1000))
		if err != nil {
			t.Fatal(err)
		}
		good[c] = z
	}
	for _, c := range allCodecs[1:] {
		z := good[c]
		cases := map[string][]byte{
			"garbage":   []byte("this is not compressed at all, not in any format"),
			"truncated": z[:len(z)/2],
			"flipped": func() []byte {
				b := bytes.Clone(z)
				for i := len(b) / 3; i < len(b); i += 5 {
					b[i] ^= 0xa5
				}
				return b
			}(),
		}
		for name, data := range cases {
			t.Run(fmt.Sprintf("%s/%s", c, name), func(t *testing.T) {
				if _, err := Decompress(c, data); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("err = %v, want ErrCorrupt", err)
				}
			})
		}
	}
	t.Run("xerial short header", func(t *testing.T) {
		if _, err := Decompress(CodecSnappy, xerialMagic); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("xerial block past end", func(t *testing.T) {
		b := append(bytes.Clone(good[CodecSnappy][:xerialHeaderLen]), 0, 0, 1, 0, 1, 2)
		if _, err := Decompress(CodecSnappy, b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
	for _, c := range []Codec{5, 7, -1} {
		if _, err := Decompress(c, []byte{1}); !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("codec %d: %v", c, err)
		}
		if _, err := Compress(c, nil, []byte{1}); !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("codec %d: %v", c, err)
		}
	}
}

// A few KiB that claim gigabytes must be cut off at the limit.
func TestDecompressBombs(t *testing.T) {
	zeros := make([]byte, 32<<20)
	for _, c := range allCodecs[1:] {
		t.Run(c.String(), func(t *testing.T) {
			bomb, err := Compress(c, nil, zeros)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecompressLimit(c, nil, bomb, 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
			out, err := DecompressLimit(c, nil, bomb, len(zeros))
			if err != nil || len(out) != len(zeros) {
				t.Fatalf("at the limit: %d bytes, %v", len(out), err)
			}
		})
	}
	t.Run("snappy declared length", func(t *testing.T) {
		// A raw block header claiming 1 GiB, without the data.
		b := binary.AppendUvarint(nil, 1<<30)
		if _, err := Decompress(CodecSnappy, append(b, 0, 0, 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err = %v", err)
		}
	})
}

// Pooled codec state is safe under concurrent use (run with -race).
func TestCodecsConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	payloads := make([][]byte, 8)
	for i := range payloads {
		payloads[i] = append(randBytes(rng, 1000*i), bytes.Repeat([]byte{byte(i)}, 5000)...)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				c := allCodecs[(g+i)%len(allCodecs)]
				in := payloads[(g*i)%len(payloads)]
				z, err := Compress(c, nil, in)
				if err != nil {
					errs <- err
					return
				}
				out, err := Decompress(c, z)
				if err != nil || !bytes.Equal(out, in) {
					errs <- fmt.Errorf("%s: %v", c, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestCodecString(t *testing.T) {
	for c, want := range map[Codec]string{CodecNone: "none", CodecGzip: "gzip", CodecSnappy: "snappy", CodecLZ4: "lz4", CodecZstd: "zstd", 6: "codec(6)"} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q", c, got)
		}
	}
}
