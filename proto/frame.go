package proto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// frameGrowStep bounds how much ReadFrame allocates ahead of the bytes that
// actually arrived. A peer announcing a 100 MiB frame and then stalling must
// not cost us 100 MiB up front.
const frameGrowStep = 1 << 20

// ReadFrame reads one size-prefixed frame (4-byte big-endian length, then
// that many bytes) and returns the frame without its prefix.
//
// A size below zero or above maxSize gives ErrFrameTooLarge; the stream cannot be
// resynchronised, so the caller closes the connection. buf is reused when its
// capacity suffices, so a connection reader that passes the previous frame
// back in allocates nothing in the steady state; the returned slice is only
// valid until buf is reused.
//
// A clean end of stream before the prefix gives io.EOF; an end inside a frame
// gives io.ErrUnexpectedEOF.
func ReadFrame(r io.Reader, maxSize int32, buf []byte) ([]byte, error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 512)
	}
	head := buf[:4]
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(head))
	if size < 0 || size > maxSize {
		return nil, fmt.Errorf("read frame: size %d (max %d): %w", size, maxSize, ErrFrameTooLarge)
	}
	n := int(size)
	if n <= cap(buf) {
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, eofIsUnexpected(err)
		}
		return buf, nil
	}
	// Grow as the bytes arrive rather than trusting the prefix.
	buf = buf[:0]
	for len(buf) < n {
		want := min(n, max(2*cap(buf), len(buf)+frameGrowStep))
		if want > cap(buf) {
			grown := make([]byte, len(buf), want)
			copy(grown, buf)
			buf = grown
		}
		end := min(n, cap(buf))
		if _, err := io.ReadFull(r, buf[len(buf):end]); err != nil {
			return nil, eofIsUnexpected(err)
		}
		buf = buf[:end]
	}
	return buf, nil
}

func eofIsUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
