package broker

import (
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendFile copies n bytes of f starting at off to the connection with
// sendfile(2), so record bytes go from the page cache to the socket without
// passing through user space. The file offset is passed explicitly, so
// concurrent readers of one segment never race on a shared position.
// Connections that are not plain TCP fall back to a copy.
func sendFile(nc net.Conn, f *os.File, off, n int64) error {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		_, err := io.Copy(nc, io.NewSectionReader(f, off, n))
		return err
	}
	fileConn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ffd int
	if err := fileConn.Control(func(fd uintptr) { ffd = int(fd) }); err != nil {
		return err
	}
	sockConn, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = sockConn.Write(func(sfd uintptr) bool {
		for n > 0 {
			w, e := unix.Sendfile(int(sfd), ffd, &off, int(min(n, 1<<30)))
			if w > 0 {
				n -= int64(w)
			}
			switch {
			case e == unix.EAGAIN:
				return false // wait until the socket is writable again
			case e == unix.EINTR:
				continue
			case e != nil:
				werr = e
				return true
			case w == 0:
				werr = fmt.Errorf("sendfile: %w (file shorter than the range)", io.ErrUnexpectedEOF)
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if werr != nil && werr != syscall.Errno(0) {
		return werr
	}
	return nil
}
