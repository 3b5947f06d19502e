package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// frameOf encodes req as a client would and strips the size prefix, giving
// what ReadFrame returns.
func frameOf(req kmsg.Request, corr int32, clientID *string) []byte {
	var f *kmsg.RequestFormatter
	if clientID != nil {
		f = kmsg.NewRequestFormatter(kmsg.FormatterClientID(*clientID))
	} else {
		f = kmsg.NewRequestFormatter()
	}
	return f.AppendRequest(nil, req, corr)[4:]
}

// TestParseRequestAllKeysAllVersions round-trips a default request of every
// key and version kmsg knows: header layouts (v0 for ControlledShutdown v0,
// v1, v2 with tags for flexible versions) and body decoding.
func TestParseRequestAllKeysAllVersions(t *testing.T) {
	id := "client-1"
	n := 0
	for key := int16(0); key < 200; key++ {
		proto := kmsg.RequestForKey(key)
		if proto == nil {
			continue
		}
		for v := int16(0); v <= proto.MaxVersion(); v++ {
			req := kmsg.RequestForKey(key)
			req.SetVersion(v)
			frame := frameOf(req, int32(key)*1000+int32(v), &id)
			if key == controlledShutdownKey && v == 0 {
				// kmsg's formatter drops this body; a v0 client sends it
				// after the v0 header.
				frame = req.AppendTo(frame)
			}
			hdr, got, err := ParseRequest(frame)
			if err != nil {
				t.Fatalf("%s v%d: %v", kmsg.NameForKey(key), v, err)
			}
			if hdr.APIKey != key || hdr.APIVersion != v || hdr.CorrelationID != int32(key)*1000+int32(v) {
				t.Fatalf("%s v%d: header %+v", kmsg.NameForKey(key), v, hdr)
			}
			if key == controlledShutdownKey && v == 0 {
				if hdr.ClientID != nil {
					t.Fatalf("ControlledShutdown v0 has no client id, got %q", *hdr.ClientID)
				}
			} else if hdr.ClientID == nil || *hdr.ClientID != id {
				t.Fatalf("%s v%d: client id %v", kmsg.NameForKey(key), v, hdr.ClientID)
			}
			if got.GetVersion() != v || got.Key() != key {
				t.Fatalf("%s v%d: parsed as key %d v%d", kmsg.NameForKey(key), v, got.Key(), got.GetVersion())
			}
			if want, have := req.AppendTo(nil), got.AppendTo(nil); !bytes.Equal(want, have) {
				t.Fatalf("%s v%d: body does not round-trip", kmsg.NameForKey(key), v)
			}
			n++
		}
	}
	if n < 300 {
		t.Fatalf("only %d key/version pairs tried", n)
	}
}

func TestParseRequestProduceAliasesFrame(t *testing.T) {
	batch := AppendBatch(nil, idempotentSpec(CodecNone), []Record{{Value: []byte("v")}})
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks = -1
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 3, Records: batch}}}}
	frame := frameOf(req, 77, nil)
	hdr, got, err := ParseRequest(frame)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.ClientID != nil {
		t.Fatalf("null client id parsed as %q", *hdr.ClientID)
	}
	p := got.(*kmsg.ProduceRequest)
	recs := p.Topics[0].Partitions[0].Records
	if !bytes.Equal(recs, batch) {
		t.Fatal("records differ")
	}
	at := bytes.Index(frame, batch)
	if &recs[0] != &frame[at] {
		t.Fatal("records do not alias the frame")
	}
}

func TestParseRequestFlexibleHeaderTags(t *testing.T) {
	// ApiVersions v3 is flexible: its header carries tagged fields.
	body := kmsg.NewPtrApiVersionsRequest()
	body.SetVersion(3)
	body.ClientSoftwareName = "strata-test"
	body.ClientSoftwareVersion = "1.0"
	var f []byte
	f = binary.BigEndian.AppendUint16(f, 18)
	f = binary.BigEndian.AppendUint16(f, 3)
	f = binary.BigEndian.AppendUint32(f, 5)
	f = binary.BigEndian.AppendUint16(f, 2)
	f = append(f, "id"...)
	f = append(f, 2, 0, 2, 'a', 'b', 200, 1, 1, 'c') // two tags, the second with a 2-byte tag number
	f = body.AppendTo(f)
	_, req, err := ParseRequest(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.(*kmsg.ApiVersionsRequest).ClientSoftwareName; got != "strata-test" {
		t.Fatalf("software name %q", got)
	}
}

func TestParseRequestErrors(t *testing.T) {
	id := "cli"
	valid := frameOf(func() kmsg.Request {
		r := kmsg.NewPtrMetadataRequest()
		r.SetVersion(4)
		r.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("abc")}}
		return r
	}(), 9, &id)

	header := func(key, version int16, corr int32) []byte {
		var f []byte
		f = binary.BigEndian.AppendUint16(f, uint16(key))
		f = binary.BigEndian.AppendUint16(f, uint16(version))
		return binary.BigEndian.AppendUint32(f, uint32(corr))
	}
	withID := func(f []byte, id string) []byte {
		f = binary.BigEndian.AppendUint16(f, uint16(len(id)))
		return append(f, id...)
	}

	tests := []struct {
		name       string
		frame      []byte
		wantErr    error
		wantHeader RequestHeader
		wantID     string
	}{
		{name: "empty", frame: nil, wantErr: ErrTruncated},
		{name: "short header", frame: []byte{0, 3, 0, 1, 0}, wantErr: ErrTruncated, wantHeader: RequestHeader{APIKey: 3, APIVersion: 1}},
		{name: "unknown key", frame: withID(header(999, 0, 12), "who"), wantErr: ErrUnknownAPIKey,
			wantHeader: RequestHeader{APIKey: 999, CorrelationID: 12}, wantID: "who"},
		{name: "ApiVersions from the future", frame: append(withID(header(18, 99, 13), "new-client"), 0, 0, 0),
			wantErr: ErrUnsupportedVersion, wantHeader: RequestHeader{APIKey: 18, APIVersion: 99, CorrelationID: 13}, wantID: "new-client"},
		{name: "negative version", frame: withID(header(3, -1, 14), "x"), wantErr: ErrUnsupportedVersion,
			wantHeader: RequestHeader{APIKey: 3, APIVersion: -1, CorrelationID: 14}, wantID: "x"},
		{name: "client id too long", frame: append(header(3, 4, 1), 0, 50, 'a'), wantErr: ErrTruncated,
			wantHeader: RequestHeader{APIKey: 3, APIVersion: 4, CorrelationID: 1}},
		{name: "client id negative length", frame: append(header(3, 4, 1), 0xff, 0xf0), wantErr: ErrBadFrame,
			wantHeader: RequestHeader{APIKey: 3, APIVersion: 4, CorrelationID: 1}},
		{name: "missing header tags", frame: withID(header(18, 3, 2), "x"), wantErr: ErrTruncated,
			wantHeader: RequestHeader{APIKey: 18, APIVersion: 3, CorrelationID: 2}, wantID: "x"},
		{name: "header tag past end", frame: append(withID(header(18, 3, 2), "x"), 1, 0, 9, 'a'), wantErr: ErrTruncated,
			wantHeader: RequestHeader{APIKey: 18, APIVersion: 3, CorrelationID: 2}, wantID: "x"},
		{name: "header tag bad uvarint", frame: append(withID(header(18, 3, 2), "x"), 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), wantErr: ErrBadFrame,
			wantHeader: RequestHeader{APIKey: 18, APIVersion: 3, CorrelationID: 2}, wantID: "x"},
		{name: "truncated body", frame: valid[:len(valid)-2], wantErr: ErrTruncated,
			wantHeader: RequestHeader{APIKey: 3, APIVersion: 4, CorrelationID: 9}, wantID: "cli"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr, req, err := ParseRequest(tt.frame)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if req != nil {
				t.Fatal("request returned with an error")
			}
			gotID := ""
			if hdr.ClientID != nil {
				gotID = *hdr.ClientID
			}
			hdr.ClientID = nil
			if hdr != tt.wantHeader || gotID != tt.wantID {
				t.Fatalf("header %+v id %q, want %+v id %q", hdr, gotID, tt.wantHeader, tt.wantID)
			}
		})
	}
}

// Every strict prefix of a request with a body must fail cleanly.
func TestParseRequestPrefixes(t *testing.T) {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Topics = []kmsg.ProduceRequestTopic{{Topic: "topic", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: []byte("xyz")}}}}
	frame := frameOf(req, 1, nil)
	for i := 0; i < len(frame); i++ {
		if _, _, err := ParseRequest(frame[:i]); err == nil {
			t.Fatalf("prefix of %d/%d bytes parsed", i, len(frame))
		}
	}
}

func TestAppendResponse(t *testing.T) {
	tests := []struct {
		name    string
		resp    kmsg.Response
		tagByte bool
	}{
		{name: "metadata v8 not flexible", resp: &kmsg.MetadataResponse{Version: 8}},
		{name: "metadata v9 flexible", resp: &kmsg.MetadataResponse{Version: 9}, tagByte: true},
		{name: "api versions v0", resp: &kmsg.ApiVersionsResponse{Version: 0, ErrorCode: kerr.UnsupportedVersion.Code}},
		{name: "api versions v3 flexible body, v0 header", resp: &kmsg.ApiVersionsResponse{Version: 3, ApiKeys: []kmsg.ApiVersionsResponseApiKey{{ApiKey: 0, MaxVersion: 9}}}},
		{name: "fetch v12", resp: &kmsg.FetchResponse{Version: 12}, tagByte: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("keep")
			out := AppendResponse(prefix, 0x01020304, tt.resp)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatal("dst prefix lost")
			}
			frame := out[len(prefix):]
			if got := int(binary.BigEndian.Uint32(frame)); got != len(frame)-4 {
				t.Fatalf("size %d, frame %d", got, len(frame)-4)
			}
			if corr := binary.BigEndian.Uint32(frame[4:]); corr != 0x01020304 {
				t.Fatalf("correlation %x", corr)
			}
			body := frame[8:]
			if tt.tagByte {
				if body[0] != 0 {
					t.Fatalf("header tag section %x", body[0])
				}
				body = body[1:]
			}
			if want := tt.resp.AppendTo(nil); !bytes.Equal(body, want) {
				t.Fatalf("body %x, want %x", body, want)
			}
			back := kmsg.ResponseForKey(tt.resp.Key())
			back.SetVersion(tt.resp.GetVersion())
			if err := back.ReadFrom(body); err != nil {
				t.Fatalf("kmsg cannot read it back: %v", err)
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	other := errors.New("other")
	tests := []struct {
		err  error
		code int16
		ok   bool
	}{
		{nil, 0, true},
		{ErrCorrupt, kerr.CorruptMessage.Code, true},
		{ErrInvalidRecord, kerr.InvalidRecord.Code, true},
		{ErrUnsupportedCodec, kerr.UnsupportedCompressionType.Code, true},
		{ErrBatchTooLarge, kerr.MessageTooLarge.Code, true},
		{ErrUnsupportedVersion, kerr.UnsupportedVersion.Code, true},
		{ErrUnknownAPIKey, kerr.InvalidRequest.Code, true},
		{ErrTruncated, kerr.InvalidRequest.Code, true},
		{ErrBadFrame, kerr.InvalidRequest.Code, true},
		{ErrFrameTooLarge, kerr.InvalidRequest.Code, true},
		{other, 0, false},
	}
	for _, tt := range tests {
		name := "nil"
		if tt.err != nil {
			name = tt.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			code, ok := ErrorCode(tt.err)
			if code != tt.code || ok != tt.ok {
				t.Fatalf("got (%d, %v), want (%d, %v)", code, ok, tt.code, tt.ok)
			}
			if tt.err != nil {
				// Wrapped errors map the same way.
				code, ok = ErrorCode(errors.Join(errors.New("ctx"), tt.err))
				if code != tt.code || ok != tt.ok {
					t.Fatalf("wrapped: got (%d, %v)", code, ok)
				}
			}
		})
	}
}
