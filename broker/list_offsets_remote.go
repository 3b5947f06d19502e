package broker

import (
	"context"
	"fmt"
	"io"

	"github.com/strata-broker/strata/proto"
)

// Timestamp lookups that reach into the remote tier. The manifest's
// per-segment max timestamps pick the segment; its batches are then read
// through the tiering cache (the same path as remote fetches, CRC-checked)
// and the first record at or after the target is found.

// remoteScanStep bounds one read while scanning a remote segment.
const remoteScanStep = 1 << 20

// hasTiered reports whether some of p's data lives only remotely.
func hasTiered(p *partition) bool {
	return p.log.LocalLogStartOffset() > p.log.LogStartOffset()
}

// remoteOffsetForTimestamp finds the first record with timestamp >=
// target among the partition's remote-only offsets.
func (s *Server) remoteOffsetForTimestamp(ctx context.Context, ts *topicState, p *partition, target int64) (off, tstamp int64, ok bool, err error) {
	man := manifestStore{s.meta}.Manifest(ts.id, p.index)
	logStart, localStart := p.log.LogStartOffset(), p.log.LocalLogStartOffset()
	for _, seg := range man.Segments {
		if seg.LastOffset < logStart || seg.MaxTimestamp < target {
			continue
		}
		if seg.BaseOffset >= localStart {
			return 0, 0, false, nil // the local log answers
		}
		found := false
		err = s.scanRemote(ctx, ts, p, max(seg.BaseOffset, logStart), min(seg.LastOffset+1, localStart), func(b proto.Batch) (bool, error) {
			if b.MaxTimestamp < target {
				return false, nil
			}
			ferr := proto.ForEachRecord(b, func(r proto.Record) error {
				o := b.BaseOffset + int64(r.OffsetDelta)
				t := b.FirstTimestamp + r.TimestampDelta
				if b.LogAppendTime() {
					t = b.MaxTimestamp
				}
				if !found && o >= logStart && t >= target {
					off, tstamp, found = o, t, true
				}
				return nil
			})
			return found, ferr
		})
		if err != nil || found {
			return off, tstamp, found, err
		}
	}
	return 0, 0, false, nil
}

// remoteMaxTimestamp finds the record with the largest timestamp among the
// remote-only offsets (the earliest such record on ties, as Kafka).
func (s *Server) remoteMaxTimestamp(ctx context.Context, ts *topicState, p *partition) (off, tstamp int64, ok bool, err error) {
	man := manifestStore{s.meta}.Manifest(ts.id, p.index)
	logStart, localStart := p.log.LogStartOffset(), p.log.LocalLogStartOffset()
	best := -1
	for i, seg := range man.Segments {
		if seg.LastOffset < logStart || seg.BaseOffset >= localStart {
			continue
		}
		if best < 0 || seg.MaxTimestamp > man.Segments[best].MaxTimestamp {
			best = i
		}
	}
	if best < 0 {
		return 0, 0, false, nil
	}
	seg := man.Segments[best]
	tstamp = -1
	err = s.scanRemote(ctx, ts, p, max(seg.BaseOffset, logStart), min(seg.LastOffset+1, localStart), func(b proto.Batch) (bool, error) {
		if b.MaxTimestamp <= tstamp {
			return false, nil
		}
		return false, proto.ForEachRecord(b, func(r proto.Record) error {
			o := b.BaseOffset + int64(r.OffsetDelta)
			t := b.FirstTimestamp + r.TimestampDelta
			if b.LogAppendTime() {
				t = b.MaxTimestamp
			}
			if o >= logStart && t > tstamp {
				off, tstamp, ok = o, t, true
			}
			return nil
		})
	})
	return off, tstamp, ok, err
}

// scanRemote walks the batches of [from, to) in the remote tier until fn
// says stop.
func (s *Server) scanRemote(ctx context.Context, ts *topicState, p *partition, from, to int64, fn func(proto.Batch) (bool, error)) error {
	var buf []byte
	for off := from; off < to; {
		rr, err := s.tier.Read(ctx, ts.id, p.index, off, remoteScanStep, true)
		if err != nil {
			return fmt.Errorf("remote scan %s-%d at %d: %w", ts.name, p.index, off, err)
		}
		buf = buf[:0]
		for _, fr := range rr.Ranges {
			n := len(buf)
			buf = append(buf, make([]byte, fr.Len)...)
			if _, err := fr.File.ReadAt(buf[n:], fr.Pos); err != nil && err != io.EOF {
				rr.Release()
				return err
			}
		}
		rr.Release()
		if len(buf) == 0 {
			return nil
		}
		next := off
		stop := false
		err = proto.SplitBatches(buf, true, func(b proto.Batch) error {
			if stop {
				return nil
			}
			next = b.LastOffset() + 1
			if b.IsControl() || b.LastOffset() < off {
				return nil
			}
			var ferr error
			stop, ferr = fn(b)
			return ferr
		})
		if err != nil || stop {
			return err
		}
		if next <= off {
			return fmt.Errorf("remote scan %s-%d made no progress at %d", ts.name, p.index, off)
		}
		off = next
	}
	return nil
}
