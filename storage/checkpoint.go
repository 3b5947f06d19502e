package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeFileAtomic replaces dir/name with data so that after a crash the
// file holds either the old or the new contents, never a mix: write a
// temporary file, fsync it, rename it over the old one, fsync the directory.
func writeFileAtomic(dirf *os.File, dir, name string, data []byte) error {
	if err := writeTmpRename(dir, name, data); err != nil {
		return err
	}
	return dirf.Sync()
}

// writeTmpRename is writeFileAtomic without the directory fsync, for
// callers that fsync the directory once for several files.
func writeTmpRename(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+tmpSuffix)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// Offset checkpoints (log start offset, recovery point) are text, like
// Kafka's checkpoint files: a version line, then the offset.
const checkpointVersion = "0"

func encodeOffsetCheckpoint(off int64) []byte {
	return []byte(checkpointVersion + "\n" + strconv.FormatInt(off, 10) + "\n")
}

// readOffsetCheckpoint returns ok=false when the file does not exist.
func readOffsetCheckpoint(dir, name string) (off int64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) != 2 || lines[0] != checkpointVersion {
		return 0, false, fmt.Errorf("checkpoint %s: bad format: %w", name, ErrCorrupt)
	}
	off, err = strconv.ParseInt(lines[1], 10, 64)
	if err != nil || off < 0 {
		return 0, false, fmt.Errorf("checkpoint %s: bad offset %q: %w", name, lines[1], ErrCorrupt)
	}
	return off, true, nil
}

// The leader epoch checkpoint: version line, entry count, then one
// "epoch startOffset" line per entry.
func encodeEpochCheckpoint(es []epochEntry) []byte {
	var b bytes.Buffer
	b.WriteString(checkpointVersion + "\n" + strconv.Itoa(len(es)) + "\n")
	for _, e := range es {
		b.WriteString(strconv.FormatInt(int64(e.epoch), 10) + " " + strconv.FormatInt(e.start, 10) + "\n")
	}
	return b.Bytes()
}

func decodeEpochCheckpoint(b []byte) ([]epochEntry, error) {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) < 2 || lines[0] != checkpointVersion {
		return nil, fmt.Errorf("leader epoch checkpoint: bad header: %w", ErrCorrupt)
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, fmt.Errorf("leader epoch checkpoint: bad count: %w", ErrCorrupt)
	}
	es := make([]epochEntry, 0, n)
	for _, ln := range lines[2:] {
		ep, st, ok := strings.Cut(ln, " ")
		e, err1 := strconv.ParseInt(ep, 10, 32)
		s, err2 := strconv.ParseInt(st, 10, 64)
		if !ok || err1 != nil || err2 != nil || e < 0 || s < 0 ||
			(len(es) > 0 && (int32(e) <= es[len(es)-1].epoch || s < es[len(es)-1].start)) {
			return nil, fmt.Errorf("leader epoch checkpoint: bad entry %q: %w", ln, ErrCorrupt)
		}
		es = append(es, epochEntry{epoch: int32(e), start: s})
	}
	return es, nil
}
