package broker

import (
	"reflect"
	"testing"

	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/tiering"
)

// fillDistinct sets every field of v to a distinct non-zero value.
func fillDistinct(v reflect.Value, n *int64) {
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			fillDistinct(v.Field(i), n)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fillDistinct(s.Index(i), n)
		}
		v.Set(s)
	case reflect.String:
		*n++
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*n++
		v.SetInt(*n)
	}
}

// TestReplaceSegmentsConversion: every field of a tiering segment reaches
// the metadata command and comes back unchanged, so a field added to both
// types is never dropped by compaction's swap.
func TestReplaceSegmentsConversion(t *testing.T) {
	var in tiering.RemoteSegment
	var n int64
	fillDistinct(reflect.ValueOf(&in).Elem(), &n)
	var mid metadata.RemoteSegment
	if err := convertByName(reflect.ValueOf(&mid).Elem(), reflect.ValueOf(in)); err != nil {
		t.Fatal(err)
	}
	var back tiering.RemoteSegment
	if err := convertByName(reflect.ValueOf(&back).Elem(), reflect.ValueOf(mid)); err != nil {
		t.Fatalf("metadata.RemoteSegment has a field tiering.RemoteSegment lacks: %v", err)
	}
	if !reflect.DeepEqual(in, back) {
		t.Fatalf("round trip\n got: %+v\nwant: %+v", back, in)
	}
	var none tiering.RemoteSegment
	if err := convertByName(reflect.ValueOf(&mid).Elem(), reflect.ValueOf(none)); err != nil || mid.Epochs != nil {
		t.Fatalf("nil epochs: %+v, %v", mid, err)
	}
}
