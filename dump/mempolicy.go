package dump

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/ptrace"
	"golang.org/x/sys/unix"
)

// memPolicy asks the thread of r its NUMA memory policy (get_mempolicy;
// per thread, inherited by fork and clone): nil for the default, and where
// the kernel has no NUMA (ENOSYS). It runs alone, after the batches: its
// answer overlaps the batch table.
func memPolicy(r *ptrace.Remote, tid int, scratch uint64) (*image.MemPolicy, error) {
	return askMemPolicy(r, tid, scratch, 0, 0)
}

// maxPolicyTable bounds the entries of vmaPolicies' own table: 512 KiB.
const maxPolicyTable = 8192

// askMemPolicy runs get_mempolicy(addr, flags) in the thread of r and
// reads its answer from the scratch area: nil for MPOL_DEFAULT or ENOSYS.
func askMemPolicy(r *ptrace.Remote, tid int, scratch, addr, flags uint64) (*image.MemPolicy, error) {
	const words = image.MemPolicyNodeWords
	_, err := r.Syscall(unix.SYS_GET_MEMPOLICY, scratch+offMemPolicy, scratch+offMemPolicy+8, words*64, addr, flags)
	if errors.Is(err, unix.ENOSYS) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get_mempolicy: %w", err)
	}
	b := make([]byte, 8+8*words)
	if err := ptrace.ReadVMAt(tid, scratch+offMemPolicy, b); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	mode := le.Uint32(b)
	if mode == unix.MPOL_DEFAULT {
		return nil, nil
	}
	var nodes []uint64
	for i := range words {
		nodes = append(nodes, le.Uint64(b[8+8*i:]))
	}
	for len(nodes) > 0 && nodes[len(nodes)-1] == 0 {
		nodes = nodes[:len(nodes)-1]
	}
	return &image.MemPolicy{Mode: mode, Nodes: nodes}, nil
}

// vmaPolicies records the NUMA memory policy of each of t's VMAs (mbind;
// a VMA ends where a range's policy does), as get_mempolicy(MPOL_F_ADDR)
// tells it at the VMA's start. All VMAs are asked in one batch whose
// entries keep the modes (ptrace.Batch.AddOut): no /proc file but
// numa_maps tells them, and it walks every page for its counts (~13 ms
// per GiB here). The few with a policy then give their node masks, one
// call each.
func vmaPolicies(r *ptrace.Remote, t *image.Task, area ptrace.BatchArea, scratch uint64) (err error) {
	var b ptrace.Batch
	var asked []*image.VMA
	for _, v := range t.VMAs {
		if special(v.Kind) {
			continue // the gate page is no VMA of the mm
		}
		b.AddOut("get_mempolicy(MPOL_F_ADDR)", unix.SYS_GET_MEMPOLICY, 0, 0, 0, 0, v.Start, unix.MPOL_F_ADDR)
		asked = append(asked, v)
	}
	if len(asked) > 4*area.Max {
		// A round trip costs far more than the ~1 µs of a query: many
		// VMAs get a table of their own, mapped for the while (where
		// the task cannot map it, the scratch area's table does).
		n := min(len(asked), maxPolicyTable)
		size := uint64(n * ptrace.BatchEntrySize)
		size = (size + image.PageSize - 1) &^ (image.PageSize - 1)
		table, merr := r.Syscall(unix.SYS_MMAP, 0, size, unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, ^uint64(0), 0)
		if merr == nil {
			defer func() {
				if _, uerr := r.Syscall(unix.SYS_MUNMAP, table, size); uerr != nil && err == nil {
					err = fmt.Errorf("unmap policy query table at %#x: %w", table, uerr)
				}
			}()
			area = ptrace.BatchArea{Code: area.Code, Table: table, Max: n}
		}
	}
	err = r.RunBatch(area, &b)
	var be *ptrace.BatchError
	switch {
	case errors.As(err, &be) && be.Index == 0 && errors.Is(err, unix.ENOSYS):
		return nil // no NUMA
	case be != nil:
		v := asked[be.Index]
		return fmt.Errorf("vma %#x-%#x: %w", v.Start, v.End, err)
	case err != nil:
		return err
	}
	for i, v := range asked {
		if uint32(b.Out(i)) == unix.MPOL_DEFAULT {
			continue
		}
		if v.MemPolicy, err = askMemPolicy(r, t.PID, scratch, v.Start, unix.MPOL_F_ADDR); err != nil {
			return fmt.Errorf("vma %#x-%#x: %w", v.Start, v.End, err)
		}
	}
	return nil
}
