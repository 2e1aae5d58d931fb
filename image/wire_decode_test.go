package image

import (
	"encoding/binary"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// A field of an encoded message, for rewriting it.
type rawField struct {
	num protowire.Number
	typ protowire.Type
	val []byte // the value as on the wire (a length-delimited one without its length)
}

func splitFields(t *testing.T, b []byte) []rawField {
	t.Helper()
	var out []rawField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatal(protowire.ParseError(m))
		}
		val := b[:m]
		if typ == protowire.BytesType {
			val, _ = protowire.ConsumeBytes(b)
		}
		out = append(out, rawField{num, typ, val})
		b = b[m:]
	}
	return out
}

func joinFields(fs []rawField) []byte {
	var b []byte
	for _, f := range fs {
		b = protowire.AppendTag(b, f.num, f.typ)
		if f.typ == protowire.BytesType {
			b = protowire.AppendBytes(b, f.val)
		} else {
			b = append(b, f.val...)
		}
	}
	return b
}

// msgShape says which top-level fields of an image's entries are singular
// scalars, repeated scalars and singular sub-messages.
type msgShape struct {
	scalars, repeated, subs []protowire.Number
}

var shapes = map[string]msgShape{
	"PSTREE":    {scalars: []protowire.Number{1, 2, 3, 4}, repeated: []protowire.Number{5}},
	"CORE":      {scalars: []protowire.Number{1}, subs: []protowire.Number{2, 3, 5}},
	"MM":        {scalars: []protowire.Number{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 17}, repeated: []protowire.Number{13}},
	"FILES":     {scalars: []protowire.Number{1, 2}, subs: []protowire.Number{3, 8, 9, 15, 20}},
	"FDINFO":    {scalars: []protowire.Number{1, 2, 3, 4}},
	"FS":        {scalars: []protowire.Number{1, 2, 3}},
	"INVENTORY": {scalars: []protowire.Number{1, 2, 6}, subs: []protowire.Number{3}},
	"PAGEMAP":   {scalars: []protowire.Number{1, 2, 4}},
}

// variants rewrites one encoded message in every way protobuf decodes to
// the same message.
func variants(t *testing.T, b []byte, sh msgShape) map[string][]byte {
	fs := splitFields(t, b)
	out := map[string][]byte{}

	// Descending field order (a stable sort keeps repeated fields' order).
	rev := slices.Clone(fs)
	slices.SortStableFunc(rev, func(a, b rawField) int { return int(b.num) - int(a.num) })
	out["reversed"] = joinFields(rev)

	// Unknown fields of every wire type between the known ones.
	unknown := []rawField{
		{900, protowire.VarintType, protowire.AppendVarint(nil, 1<<60)},
		{901, protowire.Fixed32Type, []byte{1, 2, 3, 4}},
		{902, protowire.Fixed64Type, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{903, protowire.BytesType, []byte("unknown")},
		{904, protowire.StartGroupType, protowire.AppendTag( // a group holding field 1 = 7
			protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 7), 904, protowire.EndGroupType)},
	}
	var withUnknown []rawField
	for i, f := range fs {
		withUnknown = append(withUnknown, unknown[i%len(unknown)], f)
	}
	out["unknown fields"] = joinFields(withUnknown)

	// A scalar field twice: the last one counts; and a known field number
	// with another wire type, which protobuf keeps as unknown.
	var dup []rawField
	for _, f := range fs {
		if slices.Contains(sh.scalars, f.num) && f.typ == protowire.VarintType {
			v, _ := protowire.ConsumeVarint(f.val)
			dup = append(dup, rawField{f.num, protowire.VarintType, protowire.AppendVarint(nil, v+1)},
				rawField{f.num, protowire.Fixed32Type, []byte{9, 9, 9, 9}})
		}
		dup = append(dup, f)
	}
	out["duplicates"] = joinFields(dup)

	// Repeated scalars packed.
	if len(sh.repeated) > 0 {
		var packed []rawField
		runs := map[protowire.Number]int{} // field -> index in packed
		for _, f := range fs {
			if !slices.Contains(sh.repeated, f.num) {
				packed = append(packed, f)
				continue
			}
			i, ok := runs[f.num]
			if !ok {
				i = len(packed)
				runs[f.num] = i
				packed = append(packed, rawField{f.num, protowire.BytesType, nil})
			}
			packed[i].val = append(packed[i].val, f.val...)
		}
		out["packed"] = joinFields(packed)
	}

	// Singular sub-messages split in two occurrences (protobuf merges them).
	if len(sh.subs) > 0 {
		var split []rawField
		for _, f := range fs {
			if !slices.Contains(sh.subs, f.num) || f.typ != protowire.BytesType {
				split = append(split, f)
				continue
			}
			sub := splitFields(t, f.val)
			h := len(sub) / 2
			split = append(split, rawField{f.num, f.typ, joinFields(sub[:h])}, rawField{f.num, f.typ, joinFields(sub[h:])})
		}
		out["split"] = joinFields(split)
	}
	return out
}

// imageEntries splits an image file into its header and entries.
func imageEntries(t *testing.T, data []byte) (hdr []byte, entries [][]byte) {
	d := &imgDecoder{name: "test", data: data}
	m, _ := d.u32()
	if m == magicImgCommon {
		d.u32()
	}
	hdr = data[:d.off]
	for {
		var e []byte
		ok, err := d.next(func(b []byte) error { e = b; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return hdr, entries
		}
		entries = append(entries, e)
	}
}

// TestDecodeProtobufVariants: the decoder reads every image written in
// another valid protobuf form (field order, unknown fields, repeated
// occurrences, packed repeated scalars, split sub-messages) as the
// original, and go-criu agrees that each form is the same message.
func TestDecodeProtobufVariants(t *testing.T) {
	_, _, files := sampleFiles(t)
	want, err := memReader(files).Tree()
	if err != nil {
		t.Fatal(err)
	}
	wantRuns, _, err := memReader(files).pageRuns(pagemapName(100))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if !strings.HasSuffix(name, ".img") || isPagesFile(name) || isGhostFile(name) {
			continue
		}
		magic := binary.LittleEndian.Uint32(data)
		if magic == magicImgCommon {
			magic = binary.LittleEndian.Uint32(data[4:])
		}
		magicName, _ := magicNameOf(magic)
		sh, ok := shapes[magicName]
		if !ok {
			continue
		}
		hdr, entries := imageEntries(t, data)
		forms := map[string][][]byte{}
		for _, e := range entries {
			for form, b := range variants(t, e, sh) {
				forms[form] = append(forms[form], b)
			}
		}
		for form, es := range forms {
			t.Run(name+"/"+form, func(t *testing.T) {
				img := slices.Clone(hdr)
				for i, e := range es {
					img = binary.LittleEndian.AppendUint32(img, uint32(len(e)))
					img = append(img, e...)
					if typ, ok := critEntryType(magicName); ok && typ != nil {
						orig, got := proto.Clone(typ), proto.Clone(typ)
						if err := proto.Unmarshal(entries[i], orig); err != nil {
							t.Fatal(err)
						}
						if err := proto.Unmarshal(e, got); err != nil {
							t.Fatalf("go-criu refuses the variant: %v", err)
						}
						got.ProtoReflect().SetUnknown(nil)
						if !proto.Equal(orig, got) {
							t.Fatalf("go-criu decodes entry %d of the variant to another message", i)
						}
					}
				}
				m := map[string][]byte{}
				for k, v := range files {
					m[k] = v
				}
				m[name] = img
				r := memReader(m)
				got, err := r.Tree()
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatal("tree differs")
				}
				runs, _, err := r.pageRuns(pagemapName(100))
				if err != nil || !reflect.DeepEqual(runs, wantRuns) {
					t.Fatalf("pagemap runs %+v, %v", runs, err)
				}
			})
		}
	}
}

// TestDecodeErrors: a missing required field, a bad varint, a truncated
// field are errors naming the file and the field.
func TestDecodeErrors(t *testing.T) {
	_, _, files := sampleFiles(t)
	hdr, entries := imageEntries(t, files[pstreeName])
	fs := splitFields(t, entries[0])
	for _, tc := range []struct {
		what  string
		entry []byte
		msg   string
	}{
		{"no pid", joinFields(slices.DeleteFunc(slices.Clone(fs), func(f rawField) bool { return f.num == 1 })),
			"pstree.img: entry at offset 8: pstree_entry: required field pid (1) missing"},
		{"pid as fixed32", joinFields(append([]rawField{{1, protowire.Fixed32Type, []byte{1, 0, 0, 0}}}, fs[1:]...)),
			"required field pid (1) missing"},
		{"bad varint", append(slices.Clone(entries[0]), 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
			"pstree_entry: field 1: "},
		{"truncated bytes", append(slices.Clone(entries[0]), 0x2a, 0x05, 1), "pstree_entry: field 5: "},
		{"bad packed", append(slices.Clone(entries[0]), 0x2a, 0x01, 0x80), "pstree_entry: packed field 5: "},
		{"field 0", append([]byte{0x00, 0x01}, entries[0]...), "pstree_entry: bad field tag"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			img := binary.LittleEndian.AppendUint32(slices.Clone(hdr), uint32(len(tc.entry)))
			img = append(img, tc.entry...)
			m := map[string][]byte{}
			for k, v := range files {
				m[k] = v
			}
			m[pstreeName] = img
			_, err := memReader(m).Tree()
			if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want a corrupt image error containing %q", err, tc.msg)
			}
		})
	}
}
