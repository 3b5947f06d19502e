package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func sizePrefixed(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestReadFrame(t *testing.T) {
	big := bytes.Repeat([]byte{0xab}, 3*frameGrowStep+17)
	tests := []struct {
		name    string
		in      []byte
		max     int32
		want    []byte
		wantErr error
	}{
		{name: "small", in: sizePrefixed([]byte("hello")), max: 100, want: []byte("hello")},
		{name: "empty frame", in: sizePrefixed(nil), max: 100, want: []byte{}},
		{name: "at max", in: sizePrefixed(make([]byte, 10)), max: 10, want: make([]byte, 10)},
		{name: "above max", in: sizePrefixed(make([]byte, 11)), max: 10, wantErr: ErrFrameTooLarge},
		{name: "negative size", in: []byte{0xff, 0xff, 0xff, 0xfe, 1, 2}, max: 10, wantErr: ErrFrameTooLarge},
		{name: "clean eof", in: nil, max: 10, wantErr: io.EOF},
		{name: "eof in prefix", in: []byte{0, 0}, max: 10, wantErr: io.ErrUnexpectedEOF},
		{name: "eof in body", in: []byte{0, 0, 0, 5, 'a', 'b'}, max: 10, wantErr: io.ErrUnexpectedEOF},
		{name: "grows in steps", in: sizePrefixed(big), max: 1 << 30, want: big},
		{name: "eof while growing", in: sizePrefixed(big)[:2*frameGrowStep], max: 1 << 30, wantErr: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time exercises every partial read.
			r := iotest.HalfReader(bytes.NewReader(tt.in))
			got, err := ReadFrame(r, tt.max, nil)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

func TestReadFrameReusesBuffer(t *testing.T) {
	stream := append(sizePrefixed([]byte("first frame")), sizePrefixed([]byte("second"))...)
	r := bytes.NewReader(stream)
	buf := make([]byte, 0, 64)
	f1, err := ReadFrame(r, 100, buf)
	if err != nil || string(f1) != "first frame" {
		t.Fatalf("first: %q, %v", f1, err)
	}
	f2, err := ReadFrame(r, 100, f1)
	if err != nil || string(f2) != "second" {
		t.Fatalf("second: %q, %v", f2, err)
	}
	if &f2[0] != &buf[:1][0] {
		t.Fatal("buffer not reused")
	}
	if _, err := ReadFrame(r, 100, f2); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v, want io.EOF", err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(stream)
		if _, err := ReadFrame(r, 100, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per frame with a big enough buffer", allocs)
	}
}
