package storage

import (
	"os"

	"golang.org/x/sys/unix"
)

// iovMax bounds the iovecs of one pwritev (IOV_MAX on Linux).
const iovMax = 1024

// writeBuffers writes bufs contiguously at pos with as few syscalls as
// possible: one pwritev for the usual case, more only for short writes or
// more than iovMax buffers.
func writeBuffers(f *os.File, bufs [][]byte, pos int64) error {
	if len(bufs) == 1 {
		_, err := f.WriteAt(bufs[0], pos)
		return err
	}
	fd := int(f.Fd())
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), iovMax)]
		n, err := unix.Pwritev(fd, chunk, pos)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "pwritev", Path: f.Name(), Err: err}
		}
		pos += int64(n)
		// Drop what was written; a short write resumes mid-buffer.
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}

// syncer is the fsync seam of the flush path: tests replace it with one
// that records what a power cut would keep.
type syncer interface {
	syncData(f *os.File) error
	syncDir(d *os.File) error
}

type osSyncer struct{}

func (osSyncer) syncData(f *os.File) error { return datasync(f) }
func (osSyncer) syncDir(d *os.File) error  { return d.Sync() }

// datasync flushes a segment's data and the metadata needed to read it
// back (its size), without the inode timestamps fsync would also write.
func datasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}
