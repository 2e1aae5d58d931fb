package image

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// Joining the checksums of two pieces gives the checksum of the whole, for
// every split point, including empty pieces.
func TestCRC32CCombine(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 7, 4096, 65537, 1 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		want := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
		for _, cut := range []int{0, n / 3, n / 2, n} {
			a, b := data[:cut], data[cut:]
			got := CRC32CCombine(CRC32C(0, a), CRC32C(0, b), int64(len(b)))
			if got != want {
				t.Errorf("len %d cut %d: combined %08x, whole %08x", n, cut, got, want)
			}
		}
	}
}

// Many pieces folded left to right give the whole file's checksum, as the
// page writer folds chunks.
func TestCRC32CCombineMany(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var whole []byte
	var crc uint32
	for range 50 {
		piece := make([]byte, rng.IntN(3*PageSize))
		for i := range piece {
			piece[i] = byte(rng.Uint32())
		}
		whole = append(whole, piece...)
		crc = CRC32CCombine(crc, CRC32C(0, piece), int64(len(piece)))
	}
	if want := CRC32C(0, whole); crc != want {
		t.Fatalf("folded %08x, whole %08x", crc, want)
	}
}
