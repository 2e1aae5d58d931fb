package image

import (
	"encoding/binary"
	"fmt"
)

// seccompName is CRIU's seccomp.img: one seccomp_entry holding every
// filter of the tree, each naming the filter installed before it (prev);
// a thread's core names its last one (thread_core_entry.seccomp_filter,
// with seccomp_mode SECCOMP_MODE_FILTER).
const seccompName = "seccomp.img"

const seccompModeFilter = 2 // seccomp_mode SECCOMP_MODE_FILTER

// seccompTable lays out the filters of every thread of t as CRIU's chains:
// threads whose filters begin alike (forks and threads inherit them) share
// those filters' entries. It returns the encoded seccomp_filter entries
// and each filtering thread's last entry.
func seccompTable(t *Tree) (entries [][]byte, last map[*Thread]uint32) {
	last = map[*Thread]uint32{}
	byChain := map[string]uint32{} // a chain so far (chainKey): its last entry
	for _, task := range t.Tasks {
		for _, th := range task.Threads {
			var key []byte
			for i, f := range th.Seccomp {
				key = binary.LittleEndian.AppendUint32(key, f.Flags)
				key = binary.LittleEndian.AppendUint32(key, uint32(len(f.Prog)))
				key = append(key, f.Prog...)
				if idx, ok := byChain[string(key)]; ok {
					last[th] = idx
					continue
				}
				var e protoEnc // seccomp_filter
				e.bytes(1, f.Prog)
				if i > 0 {
					e.uint32(2, last[th])
				}
				if f.Flags != 0 {
					e.uint32(3, f.Flags)
				}
				idx := uint32(len(entries))
				entries = append(entries, e.b)
				byChain[string(key)] = idx
				last[th] = idx
			}
		}
	}
	return entries, last
}

// seccompFilterMsg is one decoded seccomp_filter.
type seccompFilterMsg struct {
	filter  SeccompFilter
	prev    uint32
	hasPrev bool
}

// readSeccomp decodes seccomp.img.
func (r *Reader) readSeccomp() ([]seccompFilterMsg, error) {
	data, err := r.readMeta(seccompName)
	if err != nil {
		return nil, err
	}
	var filters []seccompFilterMsg
	err = decodeOneBytes(seccompName, data, "SECCOMP", func(b []byte) error {
		d := protoDec{msg: "seccomp_entry", b: b}
		for d.next() {
			if d.num == 1 {
				d.message("seccomp_filters", func(b []byte) error {
					var m seccompFilterMsg
					fd := protoDec{msg: "seccomp_filter", b: b}
					for fd.next() {
						switch fd.num {
						case 1:
							fd.bytes(&m.filter.Prog)
						case 2:
							fd.uint32(&m.prev)
						case 3:
							fd.uint32(&m.filter.Flags)
						}
					}
					m.hasPrev = fd.has(2)
					filters = append(filters, m)
					return fd.end("filter")
				})
			}
		}
		return d.end("")
	})
	return filters, err
}

// seccompChain returns the filters of a thread whose last one is entry
// last of table, the first installed first.
func seccompChain(table []seccompFilterMsg, last uint32) ([]SeccompFilter, error) {
	var chain []SeccompFilter
	for i := last; ; {
		if int(i) >= len(table) {
			return nil, fmt.Errorf("seccomp filter %d of %d", i, len(table))
		}
		m := table[i]
		chain = append(chain, SeccompFilter{Prog: append([]byte(nil), m.filter.Prog...), Flags: m.filter.Flags})
		if !m.hasPrev {
			break
		}
		if m.prev >= i {
			return nil, fmt.Errorf("seccomp filter %d follows filter %d, not one before it", i, m.prev)
		}
		i = m.prev
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	if err := checkSeccomp(chain); err != nil {
		return nil, err
	}
	return chain, nil
}
