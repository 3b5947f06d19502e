package broker

import (
	"context"
	"fmt"
	"reflect"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/tiering"
)

// Compaction of tiered topics swaps rewritten remote segments into the
// manifest (tiering.SegmentReplacer) with the metadata quorum's
// ReplaceRemoteSegments command.

var _ tiering.SegmentReplacer = manifestStore{}

func (m manifestStore) ReplaceSegments(ctx context.Context, topicID uuid.UUID, partition int32, reps []tiering.SegmentReplacement) error {
	out := make([]metadata.RemoteSegmentReplacement, len(reps))
	for i, r := range reps {
		out[i].OldID = r.OldID
		if err := convertByName(reflect.ValueOf(&out[i].Segment).Elem(), reflect.ValueOf(r.Segment)); err != nil {
			return fmt.Errorf("replace remote segments: %w", err)
		}
	}
	return m.meta.ReplaceRemoteSegments(ctx, topicID, partition, out)
}

// convertByName copies src into dst field by field, by name, through
// nested structs and slices: tiering and metadata describe a remote
// segment with the same field names, and a field added to both is carried
// without touching this code. A field of src that dst lacks is an error
// rather than silently dropped (TestReplaceSegmentsConversion catches it
// first).
func convertByName(dst, src reflect.Value) error {
	switch src.Kind() {
	case reflect.Struct:
		if dst.Kind() != reflect.Struct {
			return fmt.Errorf("cannot convert %s to %s", src.Type(), dst.Type())
		}
		for i := 0; i < src.NumField(); i++ {
			name := src.Type().Field(i).Name
			f := dst.FieldByName(name)
			if !f.IsValid() {
				return fmt.Errorf("%s has no field %s", dst.Type(), name)
			}
			if err := convertByName(f, src.Field(i)); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	case reflect.Slice:
		if dst.Kind() != reflect.Slice {
			return fmt.Errorf("cannot convert %s to %s", src.Type(), dst.Type())
		}
		if src.IsNil() {
			dst.SetZero()
			return nil
		}
		out := reflect.MakeSlice(dst.Type(), src.Len(), src.Len())
		for i := 0; i < src.Len(); i++ {
			if err := convertByName(out.Index(i), src.Index(i)); err != nil {
				return err
			}
		}
		dst.Set(out)
	default:
		if !src.Type().ConvertibleTo(dst.Type()) || src.Kind() != dst.Kind() {
			return fmt.Errorf("cannot convert %s to %s", src.Type(), dst.Type())
		}
		dst.Set(src.Convert(dst.Type()))
	}
	return nil
}
