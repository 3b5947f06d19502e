package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Limits are this machine's ceilings, measured in the same run as the
// broker so that the ratios compare like with like (same CPU contention,
// same kernel, same disk, same moment).
type Limits struct {
	// LoopbackTCP is one Go sender streaming 1 MiB writes to one Go
	// receiver over 127.0.0.1, in bytes per second.
	LoopbackTCP Throughput `json:"loopback_tcp"`
	// Sendfile is sendfile(2) from a page-cached file to a loopback
	// socket read by a Go receiver, in bytes per second. It is what the
	// broker's zero-copy fetch path can reach at best.
	Sendfile Throughput `json:"sendfile"`
	// FsyncWrite is sequential 1 MiB writes with an fsync after each, on
	// the filesystem of the broker's data dir, in bytes per second. It is
	// what a broker that fsyncs before acknowledging can reach with
	// well-sized group commits.
	FsyncWrite Throughput `json:"fsync_write"`
	// Dir is where FsyncWrite and the sendfile source file were measured.
	Dir string `json:"dir"`
}

// Throughput is bytes moved over a wall-clock interval.
type Throughput struct {
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

// BytesPerSec is zero when nothing was measured.
func (t Throughput) BytesPerSec() float64 {
	if t.Elapsed <= 0 {
		return 0
	}
	return float64(t.Bytes) / t.Elapsed.Seconds()
}

const (
	mib = 1 << 20
	// limitChunk is the write size of the TCP and fsync measurements and
	// the fsync interval: big enough that syscall overhead is noise.
	limitChunk = mib
	// sendfileFileSize is the page-cached source of the sendfile
	// measurement: larger than any CPU cache, far smaller than RAM.
	sendfileFileSize = 256 * mib
)

// MeasureLimits runs the three machine measurements one after the other,
// each for about d, using dir for the files.
func MeasureLimits(ctx context.Context, dir string, d time.Duration) (Limits, error) {
	l := Limits{Dir: dir}
	var err error
	if l.LoopbackTCP, err = MeasureLoopbackTCP(ctx, d); err != nil {
		return l, fmt.Errorf("loopback tcp: %w", err)
	}
	if l.Sendfile, err = MeasureSendfile(ctx, dir, d); err != nil {
		return l, fmt.Errorf("sendfile: %w", err)
	}
	if l.FsyncWrite, err = MeasureFsyncWrite(ctx, dir, d); err != nil {
		return l, fmt.Errorf("fsync write: %w", err)
	}
	return l, nil
}

// loopbackPair returns both ends of one fresh 127.0.0.1 TCP connection.
func loopbackPair(ctx context.Context) (client, server *net.TCPConn, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		ln.Close()
		<-ch
		return nil, nil, err
	}
	a := <-ch
	if a.err != nil {
		c.Close()
		return nil, nil, a.err
	}
	return c.(*net.TCPConn), a.c.(*net.TCPConn), nil
}

// drain reads conn until EOF and reports how many bytes arrived and
// when the last of them did.
type drainResult struct {
	n    int64
	last time.Time
	err  error
}

func drain(conn net.Conn) <-chan drainResult {
	ch := make(chan drainResult, 1)
	go func() {
		buf := make([]byte, limitChunk)
		var r drainResult
		for {
			n, err := conn.Read(buf)
			if n > 0 {
				r.n += int64(n)
				r.last = time.Now()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = err
				}
				ch <- r
				return
			}
		}
	}()
	return ch
}

// MeasureLoopbackTCP streams for about d and reports what the receiver
// got between the first write and its last read.
func MeasureLoopbackTCP(ctx context.Context, d time.Duration) (Throughput, error) {
	snd, rcv, err := loopbackPair(ctx)
	if err != nil {
		return Throughput{}, err
	}
	defer rcv.Close()
	done := drain(rcv)
	buf := make([]byte, limitChunk)
	if _, err := rand.Read(buf); err != nil {
		snd.Close()
		return Throughput{}, err
	}
	start := time.Now()
	deadline := start.Add(d)
	var werr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, werr = snd.Write(buf); werr != nil {
			break
		}
	}
	snd.Close()
	r := <-done
	if werr != nil {
		return Throughput{}, werr
	}
	if r.err != nil {
		return Throughput{}, r.err
	}
	return Throughput{Bytes: r.n, Elapsed: r.last.Sub(start)}, ctx.Err()
}

// MeasureSendfile writes a file in dir, syncs it (so that writeback does
// not run during the measurement) and reads it once (so it is in the page
// cache), then sendfiles it again and again to a loopback socket for
// about d, the way the broker serves Fetch.
func MeasureSendfile(ctx context.Context, dir string, d time.Duration) (Throughput, error) {
	return measureSendfile(ctx, dir, sendfileFileSize, d)
}

func measureSendfile(ctx context.Context, dir string, size int64, d time.Duration) (Throughput, error) {
	f, err := os.CreateTemp(dir, "strata-bench-sendfile-*")
	if err != nil {
		return Throughput{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, limitChunk)
	if _, err := rand.Read(buf); err != nil {
		return Throughput{}, err
	}
	for written := int64(0); written < size; written += int64(len(buf)) {
		if _, err := f.Write(buf); err != nil {
			return Throughput{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return Throughput{}, err
	}
	if _, err := io.CopyBuffer(io.Discard, io.NewSectionReader(f, 0, size), buf); err != nil {
		return Throughput{}, err
	}

	snd, rcv, err := loopbackPair(ctx)
	if err != nil {
		return Throughput{}, err
	}
	defer rcv.Close()
	done := drain(rcv)
	start := time.Now()
	deadline := start.Add(d)
	var serr error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if serr = sendfileAll(snd, f, size); serr != nil {
			break
		}
	}
	snd.Close()
	r := <-done
	if serr != nil {
		return Throughput{}, serr
	}
	if r.err != nil {
		return Throughput{}, r.err
	}
	return Throughput{Bytes: r.n, Elapsed: r.last.Sub(start)}, ctx.Err()
}

// sendfileAll sends f[0:n) to conn with sendfile(2), waiting on the
// runtime poller whenever the socket buffer is full.
func sendfileAll(conn *net.TCPConn, f *os.File, n int64) error {
	fc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ffd int
	if err := fc.Control(func(fd uintptr) { ffd = int(fd) }); err != nil {
		return err
	}
	sc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var off int64
	var serr error
	err = sc.Write(func(sfd uintptr) bool {
		for off < n {
			w, e := unix.Sendfile(int(sfd), ffd, &off, int(min(n-off, 1<<30)))
			switch {
			case e == unix.EAGAIN:
				return false
			case e == unix.EINTR:
				continue
			case e != nil:
				serr = e
				return true
			case w == 0:
				serr = io.ErrUnexpectedEOF
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// MeasureFsyncWrite appends 1 MiB at a time to a new file in dir with an
// fsync after each write, for about d.
func MeasureFsyncWrite(ctx context.Context, dir string, d time.Duration) (Throughput, error) {
	f, err := os.CreateTemp(dir, "strata-bench-fsync-*")
	if err != nil {
		return Throughput{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	// A new file's directory entry must be durable too, as for a new
	// segment; do it before the clock starts.
	if err := syncDir(filepath.Dir(f.Name())); err != nil {
		return Throughput{}, err
	}
	buf := make([]byte, limitChunk)
	if _, err := rand.Read(buf); err != nil {
		return Throughput{}, err
	}
	var n int64
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, err := f.Write(buf); err != nil {
			return Throughput{}, err
		}
		if err := f.Sync(); err != nil {
			return Throughput{}, err
		}
		n += int64(len(buf))
	}
	return Throughput{Bytes: n, Elapsed: time.Since(start)}, ctx.Err()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
