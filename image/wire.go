package image

import (
	"fmt"
	"math"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// The CRIU messages are encoded and decoded by hand with protowire alone:
// go-criu's generated types would register every CRIU .proto descriptor at
// program start (~5 ms and ~190 page faults for every mmcr command) and
// protobuf-go builds each type's coder at its first use (~7-9 ms in a dump
// or a restore). The few messages mmcr uses are small and fixed.
//
// The encoder writes what protobuf-go's marshal of the equivalent go-criu
// message writes, byte for byte: fields in ascending number order, proto2
// presence (a field is written exactly when mmcr sets it) and every
// repeated scalar unpacked, as CRIU's .proto files declare them (none says
// [packed=true]). crit_test.go and wire_compat_test.go check this against
// go-criu.
//
// The decoder takes what protobuf would: fields in any order, unknown
// fields skipped, repeated scalars packed or not, the last of repeated
// occurrences of a scalar, occurrences of a singular message merged, a
// field with another wire type than declared treated as unknown, and a
// closed enum's unknown value as absent.

// protoEnc appends the fields of one message to b.
type protoEnc struct{ b []byte }

func (e *protoEnc) uint64(num protowire.Number, v uint64) {
	e.b = protowire.AppendTag(e.b, num, protowire.VarintType)
	e.b = protowire.AppendVarint(e.b, v)
}

func (e *protoEnc) uint32(num protowire.Number, v uint32) { e.uint64(num, uint64(v)) }

// int32 (and enums): a negative value is sign-extended to 64 bits, ten
// bytes on the wire, as protobuf does.
func (e *protoEnc) int32(num protowire.Number, v int32) { e.uint64(num, uint64(int64(v))) }

func (e *protoEnc) sint32(num protowire.Number, v int32) {
	e.uint64(num, protowire.EncodeZigZag(int64(v)))
}

func (e *protoEnc) sint64(num protowire.Number, v int64) { e.uint64(num, protowire.EncodeZigZag(v)) }

func (e *protoEnc) bool(num protowire.Number, v bool) { e.uint64(num, protowire.EncodeBool(v)) }

func (e *protoEnc) bytes(num protowire.Number, v []byte) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendBytes(e.b, v)
}

func (e *protoEnc) string(num protowire.Number, v string) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, v)
}

// uint32s writes a repeated uint32 field unpacked: one tag per element.
func (e *protoEnc) uint32s(num protowire.Number, vs []uint32) {
	for _, v := range vs {
		e.uint32(num, v)
	}
}

// uint64s writes a repeated uint64 field unpacked.
func (e *protoEnc) uint64s(num protowire.Number, vs []uint64) {
	for _, v := range vs {
		e.uint64(num, v)
	}
}

// message writes a sub-message whose fields fill appends. The body is
// appended in place and its length prefix slid in before it afterwards,
// so nesting costs no buffer of its own.
func (e *protoEnc) message(num protowire.Number, fill func(e *protoEnc)) {
	e.b = protowire.AppendTag(e.b, num, protowire.BytesType)
	start := len(e.b)
	fill(e)
	n := len(e.b) - start
	sz := protowire.SizeVarint(uint64(n))
	e.b = append(e.b, make([]byte, sz)...)
	copy(e.b[start+sz:], e.b[start:start+n])
	protowire.AppendVarint(e.b[start:start], uint64(n))
}

// protoDec walks the fields of one encoded message:
//
//	d := protoDec{msg: "pstree_entry", b: b}
//	for d.next() {
//		switch d.num {
//		case 1:
//			d.uint32(&e.pid)
//		...
//		}
//	}
//	return d.end("pid ppid pgid sid")
//
// The typed setters store a field only when it came with its declared wire
// type (else protobuf keeps it as an unknown field) and mark it seen, for
// presence (has) and for the required fields end checks.
type protoDec struct {
	msg  string // CRIU message name, for errors
	b    []byte // what is left to decode
	num  protowire.Number
	typ  protowire.Type
	val  uint64 // a varint field's value
	raw  []byte // a length-delimited field's bytes (aliases the input)
	seen uint64 // bit n: field n (< 64) was stored
	err  error
}

// next moves to the next varint or length-delimited field; it skips
// fixed-size and group fields (mmcr reads none) and returns false at the
// end of the message or at the first malformed field (end reports it).
func (d *protoDec) next() bool {
	for len(d.b) > 0 && d.err == nil {
		num, typ, n := protowire.ConsumeTag(d.b)
		if n < 0 {
			d.err = fmt.Errorf("%s: bad field tag: %v", d.msg, protowire.ParseError(n))
			return false
		}
		d.b = d.b[n:]
		d.num, d.typ = num, typ
		switch typ {
		case protowire.VarintType:
			d.val, n = protowire.ConsumeVarint(d.b)
		case protowire.BytesType:
			d.raw, n = protowire.ConsumeBytes(d.b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, d.b)
		}
		if n < 0 {
			d.err = fmt.Errorf("%s: field %d: %v", d.msg, num, protowire.ParseError(n))
			return false
		}
		d.b = d.b[n:]
		if typ == protowire.VarintType || typ == protowire.BytesType {
			return true
		}
	}
	return false
}

// note marks a field mmcr does not read present, for end's check, if it
// came with its declared wire type typ.
func (d *protoDec) note(typ protowire.Type) {
	if d.typ == typ {
		d.mark()
	}
}

func (d *protoDec) mark() {
	if d.num < 64 {
		d.seen |= 1 << d.num
	}
}

// has reports whether field num was stored (proto2 presence).
func (d *protoDec) has(num protowire.Number) bool { return num < 64 && d.seen&(1<<num) != 0 }

func (d *protoDec) varint() (uint64, bool) {
	if d.typ != protowire.VarintType {
		return 0, false
	}
	d.mark()
	return d.val, true
}

func (d *protoDec) uint64(p *uint64) {
	if v, ok := d.varint(); ok {
		*p = v
	}
}

// uint32, int32, bool: protobuf truncates a wider varint the same way.
func (d *protoDec) uint32(p *uint32) {
	if v, ok := d.varint(); ok {
		*p = uint32(v)
	}
}

func (d *protoDec) int32(p *int32) {
	if v, ok := d.varint(); ok {
		*p = int32(v)
	}
}

func (d *protoDec) sint32(p *int32) {
	if v, ok := d.varint(); ok {
		*p = int32(protowire.DecodeZigZag(v & math.MaxUint32))
	}
}

func (d *protoDec) bool(p *bool) {
	if v, ok := d.varint(); ok {
		*p = protowire.DecodeBool(v)
	}
}

// enum stores a closed (proto2) enum's value; a value known not to be one
// of the enum's is what protobuf keeps as an unknown field: not stored.
func (d *protoDec) enum(p *int32, known func(int32) bool) {
	if d.typ == protowire.VarintType && known(int32(d.val)) {
		d.int32(p)
	}
}

// bytes stores a bytes field; the slice aliases the decoded data.
func (d *protoDec) bytes(p *[]byte) {
	if d.typ == protowire.BytesType {
		d.mark()
		*p = d.raw
	}
}

func (d *protoDec) string(p *string) {
	if d.typ == protowire.BytesType {
		d.mark()
		*p = string(d.raw)
	}
}

// uint32s appends a repeated uint32 field's element, or all of a packed run.
func (d *protoDec) uint32s(p *[]uint32) {
	d.repeated(func(v uint64) { *p = append(*p, uint32(v)) })
}

func (d *protoDec) uint64s(p *[]uint64) {
	d.repeated(func(v uint64) { *p = append(*p, v) })
}

func (d *protoDec) repeated(add func(uint64)) {
	switch d.typ {
	case protowire.VarintType:
		d.mark()
		add(d.val)
	case protowire.BytesType:
		d.mark()
		for b := d.raw; len(b) > 0; {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				d.err = fmt.Errorf("%s: packed field %d: %v", d.msg, d.num, protowire.ParseError(n))
				return
			}
			add(v)
			b = b[n:]
		}
	}
}

// message hands an element of a repeated sub-message field to decode and
// names the field in an error.
func (d *protoDec) message(field string, decode func(b []byte) error) {
	if d.typ != protowire.BytesType || d.err != nil {
		return
	}
	d.mark()
	if err := decode(d.raw); err != nil {
		d.err = fmt.Errorf("%s.%s: %w", d.msg, field, err)
	}
}

// singular collects a singular sub-message field into *p: protobuf merges
// repeated occurrences, which is decoding their concatenation, so the
// field is decoded once, after the loop, from *p (non-nil when present).
func (d *protoDec) singular(p *[]byte) {
	if d.typ != protowire.BytesType {
		return
	}
	d.mark()
	if *p == nil {
		*p = d.raw[:len(d.raw):len(d.raw)]
	} else {
		*p = append(slices.Clip(*p), d.raw...)
	}
}

// sub decodes a singular sub-message collected by singular (if present)
// and names the field in an error.
func (d *protoDec) sub(field string, b []byte, decode func(b []byte) error) {
	if b == nil || d.err != nil {
		return
	}
	if err := decode(b); err != nil {
		d.err = fmt.Errorf("%s.%s: %w", d.msg, field, err)
	}
}

// end returns the first decoding error, or names a missing required
// field. required lists the message's fields by number from 1, space
// separated: a name is a required field, "-" one that is not (the list
// stops after the last required field).
func (d *protoDec) end(required string) error {
	if d.err != nil {
		return d.err
	}
	num := protowire.Number(1)
	for i := 0; i < len(required); num++ {
		j := i
		for j < len(required) && required[j] != ' ' {
			j++
		}
		if name := required[i:j]; name != "-" && !d.has(num) {
			return fmt.Errorf("%s: required field %s (%d) missing", d.msg, name, num)
		}
		i = j + 1
	}
	return nil
}
