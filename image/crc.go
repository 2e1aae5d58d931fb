package image

import "hash/crc32"

// Pages are checksummed in pieces, on several goroutines, while the file's
// manifest entry needs the CRC-32C of the whole file: CRC32CCombine joins
// the pieces' checksums without reading the data again.
//
// The math: a CRC is the message polynomial times x^32, reduced modulo the
// generator P. Appending n bytes of B to A multiplies A's part by x^(8n),
// and the pre- and post-inversion of the standard CRC cancel out in the
// XOR, so crc(A||B) = crc(A)·x^(8n) mod P  XOR  crc(B). Polynomials are
// kept bit-reflected, as the table-driven CRC keeps them: bit 31 is x^0.

// castagnoliReflected is the CRC-32C generator, bit-reflected.
const castagnoliReflected = 0x82f63b78

// CRC32C returns the CRC-32C checksum of data, continuing from crc (0 to
// start a new one): the checksum the manifest records.
func CRC32C(crc uint32, data []byte) uint32 { return crc32.Update(crc, crc32cTable, data) }

// mulModP multiplies two reflected polynomials modulo P.
func mulModP(a, b uint32) uint32 {
	var prod uint32
	for bit := uint32(1) << 31; a != 0; bit >>= 1 {
		if a&bit != 0 {
			prod ^= b
			a &^= bit
		}
		// b *= x: a shift toward the high powers, reducing the x^32 term.
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReflected
		} else {
			b >>= 1
		}
	}
	return prod
}

// xPow2 holds x^(2^k) mod P for k = 0..66, enough for any 64-bit count of
// bytes (8n = 2^3·n): repeated squaring of x.
var xPow2 = func() (t [67]uint32) {
	t[0] = 1 << 30 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = mulModP(t[k-1], t[k-1])
	}
	return t
}()

// xPowBytes returns x^(8n) mod P: the factor n appended bytes apply.
func xPowBytes(n uint64) uint32 {
	p := uint32(1) << 31 // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = mulModP(xPow2[k], p)
		}
	}
	return p
}

// CRC32CCombine returns the CRC-32C of A||B from crcA, crcB and len(B).
func CRC32CCombine(crcA, crcB uint32, lenB int64) uint32 {
	if lenB <= 0 {
		return crcA ^ crcB // B is empty: crcB is 0
	}
	return mulModP(xPowBytes(uint64(lenB)), crcA) ^ crcB
}
