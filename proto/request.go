package proto

import (
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// apiVersionsKey is special twice over: its response header never carries
// tagged fields (clients parse it before they know what the broker speaks),
// and an unsupported version must still be answered.
const apiVersionsKey = 18

// controlledShutdownKey v0 is the one request that uses header v0 (no client
// id).
const controlledShutdownKey = 7

// RequestHeader is the part of a request before its body.
type RequestHeader struct {
	APIKey        int16
	APIVersion    int16
	CorrelationID int32
	ClientID      *string
}

// ParseRequest decodes a request frame (as returned by ReadFrame): header,
// then body with kmsg at the header's version.
//
// For an unknown key or a version kmsg cannot decode it returns the header it
// could read (key, version, correlation id and, when readable, client id)
// with ErrUnknownAPIKey or ErrUnsupportedVersion, so the broker can still
// answer ApiVersions with UNSUPPORTED_VERSION at v0. A frame that ends early
// gives ErrTruncated; other malformations give ErrBadFrame.
//
// Byte fields of the body (Produce RecordBatches, group metadata...) alias
// frame, so frame must not be reused while the request is alive. Strings are
// copied.
func ParseRequest(frame []byte) (hdr RequestHeader, req kmsg.Request, err error) {
	if len(frame) < 8 {
		if len(frame) >= 2 {
			hdr.APIKey = int16(binary.BigEndian.Uint16(frame))
		}
		if len(frame) >= 4 {
			hdr.APIVersion = int16(binary.BigEndian.Uint16(frame[2:]))
		}
		return hdr, nil, fmt.Errorf("parse request header: %d bytes: %w", len(frame), ErrTruncated)
	}
	hdr.APIKey = int16(binary.BigEndian.Uint16(frame))
	hdr.APIVersion = int16(binary.BigEndian.Uint16(frame[2:]))
	hdr.CorrelationID = int32(binary.BigEndian.Uint32(frame[4:]))
	rest := frame[8:]

	req = kmsg.RequestForKey(hdr.APIKey)
	if req == nil || hdr.APIVersion < 0 || hdr.APIVersion > req.MaxVersion() {
		// Best effort: the client id helps logging, and a v1 header layout
		// is shared by every version a client could send here.
		if id, _, cerr := readClientID(rest); cerr == nil {
			hdr.ClientID = id
		}
		if req == nil {
			return hdr, nil, fmt.Errorf("parse request key %d: %w", hdr.APIKey, ErrUnknownAPIKey)
		}
		return hdr, nil, fmt.Errorf("parse %s v%d (max %d): %w",
			kmsg.NameForKey(hdr.APIKey), hdr.APIVersion, req.MaxVersion(), ErrUnsupportedVersion)
	}
	req.SetVersion(hdr.APIVersion)

	if !(hdr.APIKey == controlledShutdownKey && hdr.APIVersion == 0) {
		id, n, cerr := readClientID(rest)
		if cerr != nil {
			return hdr, nil, fmt.Errorf("parse %s v%d client id: %w", kmsg.NameForKey(hdr.APIKey), hdr.APIVersion, cerr)
		}
		hdr.ClientID = id
		rest = rest[n:]
	}
	if req.IsFlexible() {
		n, terr := skipTags(rest)
		if terr != nil {
			return hdr, nil, fmt.Errorf("parse %s v%d header tags: %w", kmsg.NameForKey(hdr.APIKey), hdr.APIVersion, terr)
		}
		rest = rest[n:]
	}
	if err := readBody(req, rest); err != nil {
		return hdr, nil, fmt.Errorf("parse %s v%d body: %w", kmsg.NameForKey(hdr.APIKey), hdr.APIVersion, err)
	}
	return hdr, req, nil
}

// readBody runs kmsg's decoder. kmsg reports short input as an error, but it
// is generated code fed by strangers, so a panic is also caught and turned
// into ErrBadFrame rather than taking the broker down.
func readBody(req kmsg.Request, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v: %w", r, ErrBadFrame)
		}
	}()
	if rerr := req.ReadFrom(b); rerr != nil {
		return fmt.Errorf("%v: %w", rerr, ErrTruncated)
	}
	return nil
}

// readClientID reads the header's nullable string (int16 length, -1 = null;
// never compact, even in flexible headers).
func readClientID(b []byte) (*string, int, error) {
	if len(b) < 2 {
		return nil, 0, ErrTruncated
	}
	l := int(int16(binary.BigEndian.Uint16(b)))
	switch {
	case l == -1:
		return nil, 2, nil
	case l < 0:
		return nil, 0, fmt.Errorf("client id length %d: %w", l, ErrBadFrame)
	case len(b)-2 < l:
		return nil, 0, ErrTruncated
	}
	s := string(b[2 : 2+l])
	return &s, 2 + l, nil
}

// skipTags steps over a tagged-field section: uvarint count, then per field
// uvarint tag, uvarint size, size bytes. It returns the bytes consumed.
func skipTags(b []byte) (int, error) {
	count, n := binary.Uvarint(b)
	if n <= 0 || n > 5 {
		return 0, tagErr(n)
	}
	off := n
	for i := uint64(0); i < count; i++ {
		_, n = binary.Uvarint(b[off:])
		if n <= 0 || n > 5 {
			return 0, tagErr(n)
		}
		off += n
		size, n := binary.Uvarint(b[off:])
		if n <= 0 || n > 5 {
			return 0, tagErr(n)
		}
		off += n
		if size > uint64(len(b)-off) {
			return 0, ErrTruncated
		}
		off += int(size)
	}
	return off, nil
}

func tagErr(n int) error {
	if n == 0 {
		return ErrTruncated
	}
	return fmt.Errorf("bad uvarint in tagged fields: %w", ErrBadFrame)
}

// AppendResponse appends a whole response frame to dst: size prefix,
// response header (correlation id, plus an empty tagged-field section when
// resp is flexible, except for ApiVersions whose response header is always
// v0), then the body kmsg encodes at resp's version.
func AppendResponse(dst []byte, correlationID int32, resp kmsg.Response) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}
