//go:build !linux

package storage

import "os"

// writeBuffers writes bufs contiguously at pos (portable fallback: one
// pwrite per buffer).
func writeBuffers(f *os.File, bufs [][]byte, pos int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, pos); err != nil {
			return err
		}
		pos += int64(len(b))
	}
	return nil
}

func datasync(f *os.File) error { return f.Sync() }

// syncer is the fsync seam of the flush path: tests replace it with one
// that records what a power cut would keep.
type syncer interface {
	syncData(f *os.File) error
	syncDir(d *os.File) error
}

type osSyncer struct{}

func (osSyncer) syncData(f *os.File) error { return datasync(f) }
func (osSyncer) syncDir(d *os.File) error  { return d.Sync() }
