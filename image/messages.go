package image

import (
	"fmt"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protowire"
)

// The CRIU messages as mmcr reads them: each holds the fields mmcr uses,
// and its decode method takes one encoded message (see wire.go for what
// is accepted). A message decodes its required fields' presence too, so a
// truncated entry is an error naming the missing field, as it was through
// protobuf; the sub-messages mmcr does not read are only skipped.

// fdTypeKnown: the values of CRIU's fd_types enum.
func fdTypeKnown(v int32) bool { return v >= 0 && v <= 19 || v == 65534 || v == 65535 }

// marchKnown: the values of core_entry.march.
func marchKnown(v int32) bool { return v >= 0 && v <= 6 }

// regsModeKnown: the values of user_x86_regs_mode.
func regsModeKnown(v int32) bool { return v == regsModeNative || v == regsModeCompat }

// inventoryMsg: inventory_entry.
type inventoryMsg struct {
	imgVersion uint32
	nsPerID    bool
}

func (m *inventoryMsg) decode(b []byte) error {
	d := protoDec{msg: "inventory_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.imgVersion)
		case 4:
			d.bool(&m.nsPerID)
		}
	}
	return d.end("img_version")
}

// pstreeMsg: pstree_entry.
type pstreeMsg struct {
	pid, ppid, pgid, sid uint32
	threads              []uint32
}

func (m *pstreeMsg) decode(b []byte) error {
	d := protoDec{msg: "pstree_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.pid)
		case 2:
			d.uint32(&m.ppid)
		case 3:
			d.uint32(&m.pgid)
		case 4:
			d.uint32(&m.sid)
		case 5:
			d.uint32s(&m.threads)
		}
	}
	return d.end("pid ppid pgid sid")
}

// fileMsg: file_entry, with the kinds of file mmcr writes.
type fileMsg struct {
	typ   int32
	id    uint32
	reg   *regFileMsg
	efd   *counterMsg
	sgfd  *counterMsg
	tfd   *timerfdMsg
	ify   *inotifyMsg
	epfd  *eventpollMsg
	ext   bool // an ext_file_entry is present
	memfd *memfdFileMsg
	pipe  *pipeMsg
	usk   *unixSkMsg
	fifo  *fifoMsg
	isk   *inetSkMsg
}

func (m *fileMsg) decode(b []byte) error {
	d := protoDec{msg: "file_entry", b: b}
	var reg, efd, sgfd, tfd, ify, epfd, ext, memfd, pipe, usk, fifo, isk []byte
	for d.next() {
		switch d.num {
		case 1:
			d.enum(&m.typ, fdTypeKnown)
		case 2:
			d.uint32(&m.id)
		case 3:
			d.singular(&reg)
		case 4:
			d.singular(&isk)
		case 8:
			d.singular(&efd)
		case 9:
			d.singular(&epfd)
		case 10:
			d.singular(&sgfd)
		case 12:
			d.singular(&tfd)
		case 13:
			d.singular(&ify)
		case 15:
			d.singular(&ext)
		case 16:
			d.singular(&usk)
		case 17:
			d.singular(&fifo)
		case 18:
			d.singular(&pipe)
		case 20:
			d.singular(&memfd)
		}
	}
	d.sub("reg", reg, func(b []byte) error { m.reg = &regFileMsg{}; return m.reg.decode(b) })
	d.sub("efd", efd, func(b []byte) error { m.efd = &counterMsg{}; return m.efd.decode("eventfd_file_entry")(b) })
	d.sub("epfd", epfd, func(b []byte) error { m.epfd = &eventpollMsg{}; return m.epfd.decode(b) })
	d.sub("sgfd", sgfd, func(b []byte) error { m.sgfd = &counterMsg{}; return m.sgfd.decode("signalfd_entry")(b) })
	d.sub("tfd", tfd, func(b []byte) error { m.tfd = &timerfdMsg{}; return m.tfd.decode(b) })
	d.sub("ify", ify, func(b []byte) error { m.ify = &inotifyMsg{}; return m.ify.decode(b) })
	d.sub("ext", ext, func(b []byte) error { m.ext = true; return decodeExtFile(b) })
	d.sub("memfd", memfd, func(b []byte) error { m.memfd = &memfdFileMsg{}; return m.memfd.decode(b) })
	d.sub("pipe", pipe, func(b []byte) error { m.pipe = &pipeMsg{}; return m.pipe.decode(b) })
	d.sub("usk", usk, func(b []byte) error { m.usk = &unixSkMsg{}; return m.usk.decode(b) })
	d.sub("fifo", fifo, func(b []byte) error { m.fifo = &fifoMsg{}; return m.fifo.decode(b) })
	d.sub("isk", isk, func(b []byte) error { m.isk = &inetSkMsg{}; return m.isk.decode(b) })
	return d.end("type id")
}

// regFileMsg: reg_file_entry.
type regFileMsg struct {
	flags uint32
	pos   uint64
	name  string
	size  uint64
	mode  uint32
}

func (m *regFileMsg) decode(b []byte) error {
	d := protoDec{msg: "reg_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 5:
			d.note(protowire.BytesType) // fown: required, not read
		case 2:
			d.uint32(&m.flags)
		case 3:
			d.uint64(&m.pos)
		case 6:
			d.string(&m.name)
		case 8:
			d.uint64(&m.size)
		case 10:
			d.uint32(&m.mode)
		}
	}
	return d.end("id flags pos - fown name")
}

// memfdFileMsg: memfd_file_entry.
type memfdFileMsg struct{ inodeID uint32 }

func (m *memfdFileMsg) decode(b []byte) error {
	d := protoDec{msg: "memfd_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1, 2, 3:
			d.note(protowire.VarintType) // id, flags, pos: required, not read
		case 4:
			d.note(protowire.BytesType) // fown: required, not read
		case 5:
			d.uint32(&m.inodeID)
		}
	}
	return d.end("id flags pos fown inode_id")
}

// counterMsg: eventfd_file_entry or signalfd_entry, alike: {id, flags,
// fown, one 64-bit value (the counter, the mask)}.
type counterMsg struct {
	flags uint32
	value uint64
}

func (m *counterMsg) decode(msg string) func(b []byte) error {
	return func(b []byte) error {
		d := protoDec{msg: msg, b: b}
		for d.next() {
			switch d.num {
			case 1:
				d.note(protowire.VarintType) // id: required, not read
			case 3:
				d.note(protowire.BytesType) // fown: required, not read
			case 2:
				d.uint32(&m.flags)
			case 4:
				d.uint64(&m.value)
			}
		}
		return d.end("id flags fown value")
	}
}

// inotifyMsg: inotify_file_entry.
type inotifyMsg struct {
	flags uint32
	wds   []InotifyWatch
}

func (m *inotifyMsg) decode(b []byte) error {
	d := protoDec{msg: "inotify_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 4:
			d.note(protowire.BytesType) // fown: required, not read
		case 2:
			d.uint32(&m.flags)
		case 5:
			d.message("wd", func(b []byte) error {
				w, err := decodeInotifyWd(b)
				m.wds = append(m.wds, w)
				return err
			})
		}
	}
	return d.end("id flags - fown")
}

// decodeInotifyWd decodes an inotify_wd_entry: one watch.
func decodeInotifyWd(b []byte) (InotifyWatch, error) {
	var w InotifyWatch
	var wd uint32
	var fh []byte
	d := protoDec{msg: "inotify_wd_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 2:
			d.uint64(&w.Ino)
		case 3:
			d.uint32(&w.Mask)
		case 4:
			d.uint32(&w.IgnoredMask)
		case 5:
			d.uint32(&w.Sdev)
		case 6:
			d.uint32(&wd)
		case 7:
			d.singular(&fh)
		}
	}
	d.sub("f_handle", fh, func(b []byte) error { return decodeFileHandle(b, &w) })
	w.WD = int32(wd)
	if wd > 1<<31-1 {
		return w, fmt.Errorf("inotify_wd_entry: wd %d", wd)
	}
	return w, d.end("id i_ino mask ignored_mask s_dev wd f_handle")
}

// decodeFileHandle decodes an fh_entry into w's handle and path.
func decodeFileHandle(b []byte, w *InotifyWatch) error {
	var nbytes, typ uint32
	var words []uint64
	d := protoDec{msg: "fh_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&nbytes)
		case 2:
			d.uint32(&typ)
		case 3:
			d.uint64s(&words)
		case 4:
			d.string(&w.Path)
		}
	}
	if err := d.end("bytes type"); err != nil {
		return err
	}
	if nbytes > maxFileHandle || int(nbytes) > 8*len(words) || typ > 1<<31-1 {
		return fmt.Errorf("fh_entry: %d bytes in %d words, type %d", nbytes, len(words), typ)
	}
	w.HandleType = int32(typ)
	w.Handle = make([]byte, nbytes)
	for i := range w.Handle {
		w.Handle[i] = byte(words[i/8] >> (8 * (i % 8)))
	}
	return nil
}

// timerfdMsg: timerfd_entry.
type timerfdMsg struct {
	flags, clock, settime           uint32
	ticks, vsec, vnsec, isec, insec uint64
}

func (m *timerfdMsg) decode(b []byte) error {
	d := protoDec{msg: "timerfd_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 3:
			d.note(protowire.BytesType) // fown: required, not read
		case 2:
			d.uint32(&m.flags)
		case 4:
			d.uint32(&m.clock)
		case 5:
			d.uint64(&m.ticks)
		case 6:
			d.uint32(&m.settime)
		case 7:
			d.uint64(&m.vsec)
		case 8:
			d.uint64(&m.vnsec)
		case 9:
			d.uint64(&m.isec)
		case 10:
			d.uint64(&m.insec)
		}
	}
	return d.end("id flags fown clockid ticks settime_flags vsec vnsec isec insec")
}

// eventpollMsg: eventpoll_file_entry.
type eventpollMsg struct {
	flags uint32
	tfds  []EpollTarget
}

func (m *eventpollMsg) decode(b []byte) error {
	d := protoDec{msg: "eventpoll_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 3:
			d.note(protowire.BytesType) // fown: required, not read
		case 2:
			d.uint32(&m.flags)
		case 4:
			d.message("tfd", func(b []byte) error {
				tg, err := decodeTfd(b)
				m.tfds = append(m.tfds, tg)
				return err
			})
		}
	}
	return d.end("id flags fown")
}

// decodeTfd decodes an eventpoll_tfd_entry: a target fd's registration.
func decodeTfd(b []byte) (EpollTarget, error) {
	var tg EpollTarget
	var fd uint32
	d := protoDec{msg: "eventpoll_tfd_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id: required, not read
		case 2:
			d.uint32(&fd)
		case 3:
			d.uint32(&tg.Events)
		case 4:
			d.uint64(&tg.Data)
		}
	}
	tg.FD = int(fd)
	return tg, d.end("id tfd events data")
}

// decodeExtFile checks an ext_file_entry (mmcr reads nothing of it).
func decodeExtFile(b []byte) error {
	d := protoDec{msg: "ext_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.note(protowire.VarintType) // id
		case 5:
			d.note(protowire.BytesType) // fown
		}
	}
	return d.end("id - - - fown")
}

// fdinfoMsg: fdinfo_entry.
type fdinfoMsg struct {
	id, flags uint32
	typ       int32
	fd        uint32
}

func (m *fdinfoMsg) decode(b []byte) error {
	d := protoDec{msg: "fdinfo_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.id)
		case 2:
			d.uint32(&m.flags)
		case 3:
			d.enum(&m.typ, fdTypeKnown)
		case 4:
			d.uint32(&m.fd)
		}
	}
	return d.end("id flags type fd")
}

// fsMsg: fs_entry.
type fsMsg struct{ cwdID, rootID, umask uint32 }

func (m *fsMsg) decode(b []byte) error {
	d := protoDec{msg: "fs_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.cwdID)
		case 2:
			d.uint32(&m.rootID)
		case 3:
			d.uint32(&m.umask)
		}
	}
	return d.end("cwd_id root_id")
}

// coreMsg: core_entry, x86 only.
type coreMsg struct {
	mtype int32
	ti    *threadInfoMsg
	tc    *taskCoreMsg
	thc   *threadCoreMsg
}

func (m *coreMsg) decode(b []byte) error {
	d := protoDec{msg: "core_entry", b: b}
	var ti, tc, thc []byte
	for d.next() {
		switch d.num {
		case 1:
			d.enum(&m.mtype, marchKnown)
		case 2:
			d.singular(&ti)
		case 3:
			d.singular(&tc)
		case 5:
			d.singular(&thc)
		}
	}
	d.sub("thread_info", ti, func(b []byte) error { m.ti = &threadInfoMsg{}; return m.ti.decode(b) })
	d.sub("tc", tc, func(b []byte) error { m.tc = &taskCoreMsg{}; return m.tc.decode(b) })
	d.sub("thread_core", thc, func(b []byte) error { m.thc = &threadCoreMsg{}; return m.thc.decode(b) })
	return d.end("mtype")
}

// threadInfoMsg: thread_info_x86 with its user_x86_regs_entry.
type threadInfoMsg struct {
	clearTIDAddr uint64
	regs         unix.PtraceRegs
	mode         int32
}

func (m *threadInfoMsg) decode(b []byte) error {
	d := protoDec{msg: "thread_info_x86", b: b}
	var gp []byte
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.clearTIDAddr)
		case 2:
			d.singular(&gp)
		case 3:
			d.note(protowire.BytesType) // fpregs: required; restore uses the raw xsave of the extension file
		}
	}
	d.sub("gpregs", gp, m.decodeRegs)
	return d.end("clear_tid_addr gpregs fpregs")
}

// decodeRegs decodes user_x86_regs_entry: fields 1..27 are the registers
// in PtraceRegs order but for rbp/rbx (bp, bx) before r11.
func (m *threadInfoMsg) decodeRegs(b []byte) error {
	r := &m.regs
	regs := [...]*uint64{&r.R15, &r.R14, &r.R13, &r.R12, &r.Rbp, &r.Rbx, &r.R11, &r.R10, &r.R9, &r.R8,
		&r.Rax, &r.Rcx, &r.Rdx, &r.Rsi, &r.Rdi, &r.Orig_rax, &r.Rip, &r.Cs, &r.Eflags, &r.Rsp, &r.Ss,
		&r.Fs_base, &r.Gs_base, &r.Ds, &r.Es, &r.Fs, &r.Gs}
	m.mode = regsModeNative // the field's default
	d := protoDec{msg: "user_x86_regs_entry", b: b}
	for d.next() {
		switch {
		case d.num >= 1 && int(d.num) <= len(regs):
			d.uint64(regs[d.num-1])
		case d.num == 28:
			d.enum(&m.mode, regsModeKnown)
		}
	}
	return d.end("r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss fs_base gs_base ds es fs gs")
}

// threadCoreMsg: thread_core_entry.
type threadCoreMsg struct {
	futexRla        uint64
	futexRlaLen     uint32
	sched           *Sched // nil: no sched_policy
	schedPrioOrNice bool   // sched_prio or sched_nice present
	blkSigset       uint64
	sas             SigAltStack
	pdeathSig       uint32
	pending         []SigInfo
	creds           *credsMsg
	comm            string
	rseq            Rseq
	seccompMode     uint32
	seccompFilter   uint32 // the thread's last filter in seccomp.img, when seccompMode is 2
}

func (m *threadCoreMsg) decode(b []byte) error {
	d := protoDec{msg: "thread_core_entry", b: b}
	var s Sched
	var sas, sigs, creds, rseq []byte
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.futexRla)
		case 2:
			d.uint32(&m.futexRlaLen)
		case 3:
			d.sint32(&s.Nice)
		case 4:
			d.uint32(&s.Policy)
		case 5:
			d.uint32(&s.Prio)
		case 6:
			d.uint64(&m.blkSigset)
		case 7:
			d.singular(&sas)
		case 8:
			d.uint32(&m.pdeathSig)
		case 9:
			d.singular(&sigs)
		case 10:
			d.singular(&creds)
		case 11:
			d.uint32(&m.seccompMode)
		case 12:
			d.uint32(&m.seccompFilter)
		case 13:
			d.string(&m.comm)
		case 15:
			d.singular(&rseq)
		}
	}
	if d.has(4) {
		m.sched = &s
	}
	m.schedPrioOrNice = d.has(3) || d.has(5)
	d.sub("sas", sas, m.decodeSas)
	d.sub("signals_p", sigs, func(b []byte) (err error) { m.pending, err = decodeSigQueue(b); return err })
	d.sub("creds", creds, func(b []byte) error { m.creds = &credsMsg{}; return m.creds.decode(b) })
	d.sub("rseq_entry", rseq, m.decodeRseq)
	return d.end("futex_rla futex_rla_len")
}

// decodeSas decodes thread_sas_entry: the alternate signal stack.
func (m *threadCoreMsg) decodeSas(b []byte) error {
	var flags uint32
	d := protoDec{msg: "thread_sas_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.sas.SP)
		case 2:
			d.uint64(&m.sas.Size)
		case 3:
			d.uint32(&flags)
		}
	}
	m.sas.Flags = int32(flags)
	return d.end("ss_sp ss_size ss_flags")
}

// decodeRseq decodes rseq_entry.
func (m *threadCoreMsg) decodeRseq(b []byte) error {
	d := protoDec{msg: "rseq_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.rseq.Addr)
		case 2:
			d.uint32(&m.rseq.Len)
		case 3:
			d.uint32(&m.rseq.Sig)
		}
	}
	return d.end("rseq_abi_pointer rseq_abi_size signature")
}

// decodeSigQueue decodes signal_queue_entry: siginfos of the kernel's size.
func decodeSigQueue(b []byte) ([]SigInfo, error) {
	var out []SigInfo
	d := protoDec{msg: "signal_queue_entry", b: b}
	for d.next() {
		if d.num == 1 {
			d.message("signals", func(b []byte) error {
				var si []byte
				e := protoDec{msg: "siginfo_entry", b: b}
				for e.next() {
					if e.num == 1 {
						e.bytes(&si)
					}
				}
				if err := e.end("siginfo"); err != nil {
					return err
				}
				if len(si) != len(SigInfo{}) {
					return fmt.Errorf("siginfo of %d bytes", len(si))
				}
				out = append(out, SigInfo(si))
				return nil
			})
		}
	}
	return out, d.end("")
}

// credsMsg: creds_entry.
type credsMsg struct {
	ids                            [8]uint32 // uid gid euid egid suid sgid fsuid fsgid
	capInh, capPrm, capEff, capBnd []uint32
	secbits                        uint32
	groups                         []uint32
}

func (m *credsMsg) decode(b []byte) error {
	d := protoDec{msg: "creds_entry", b: b}
	for d.next() {
		switch d.num {
		case 1, 2, 3, 4, 5, 6, 7, 8:
			d.uint32(&m.ids[d.num-1])
		case 9:
			d.uint32s(&m.capInh)
		case 10:
			d.uint32s(&m.capPrm)
		case 11:
			d.uint32s(&m.capEff)
		case 12:
			d.uint32s(&m.capBnd)
		case 13:
			d.uint32(&m.secbits)
		case 14:
			d.uint32s(&m.groups)
		}
	}
	return d.end("uid gid euid egid suid sgid fsuid fsgid - - - - secbits")
}

// taskCoreMsg: task_core_entry.
type taskCoreMsg struct {
	taskState, personality uint32
	exitCode               uint32
	comm                   string
	timers                 *[3]Itimer // real, virt, prof
	posixTimers            []PosixTimer
	rlimits                []unix.Rlimit
	sharedPending          []SigInfo
	oomScoreAdj            *int32
	sigactions             []SigAction
	childSubreaper         bool
}

func (m *taskCoreMsg) decode(b []byte) error {
	d := protoDec{msg: "task_core_entry", b: b}
	var timers, rlimits, sigs []byte
	var oom int32
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&m.taskState)
		case 2:
			d.uint32(&m.exitCode)
		case 4, 5:
			d.note(protowire.VarintType) // flags, blk_sigset (the thread core's is used): required, not read
		case 3:
			d.uint32(&m.personality)
		case 6:
			d.string(&m.comm)
		case 7:
			d.singular(&timers)
		case 8:
			d.singular(&rlimits)
		case 10:
			d.singular(&sigs)
		case 14:
			d.int32(&oom)
		case 15:
			d.message("sigactions", func(b []byte) error {
				sa, err := decodeSa(b)
				m.sigactions = append(m.sigactions, sa)
				return err
			})
		case 18:
			d.bool(&m.childSubreaper)
		}
	}
	if d.has(14) {
		m.oomScoreAdj = &oom
	}
	d.sub("timers", timers, m.decodeTimers)
	d.sub("rlimits", rlimits, m.decodeRlimits)
	d.sub("signals_s", sigs, func(b []byte) (err error) { m.sharedPending, err = decodeSigQueue(b); return err })
	return d.end("task_state exit_code personality flags blk_sigset comm")
}

// decodeTimers decodes task_timers_entry.
func (m *taskCoreMsg) decodeTimers(b []byte) error {
	m.timers = &[3]Itimer{}
	var raw [3][]byte
	d := protoDec{msg: "task_timers_entry", b: b}
	for d.next() {
		switch d.num {
		case 1, 2, 3:
			d.singular(&raw[d.num-1])
		case 4:
			d.message("posix", func(b []byte) error {
				pt, err := decodePosixTimer(b)
				m.posixTimers = append(m.posixTimers, pt)
				return err
			})
		}
	}
	for i, name := range []string{"real", "virt", "prof"} {
		d.sub(name, raw[i], func(b []byte) (err error) { m.timers[i], err = decodeItimer(b); return err })
	}
	return d.end("real virt prof")
}

// decodePosixTimer decodes posix_timer_entry.
func decodePosixTimer(b []byte) (PosixTimer, error) {
	var pt PosixTimer
	var id, clock, signo, notify, overrun uint32
	var isec, insec, vsec, vnsec uint64
	var tid int32
	d := protoDec{msg: "posix_timer_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint32(&id)
		case 2:
			d.uint32(&clock)
		case 3:
			d.uint32(&signo)
		case 4:
			d.uint32(&notify)
		case 5:
			d.uint64(&pt.SigValue)
		case 6:
			d.uint32(&overrun)
		case 7:
			d.uint64(&isec)
		case 8:
			d.uint64(&insec)
		case 9:
			d.uint64(&vsec)
		case 10:
			d.uint64(&vnsec)
		case 11:
			d.int32(&tid)
		}
	}
	if isec > 1<<32 || vsec > 1<<32 || insec >= 1e9 || vnsec >= 1e9 {
		return pt, fmt.Errorf("posix_timer_entry: interval %d.%09d s, value %d.%09d s", isec, insec, vsec, vnsec)
	}
	pt.ID, pt.Clock, pt.Signo, pt.Notify, pt.Overrun, pt.NotifyTID = int32(id), int32(clock), int32(signo), int32(notify), int32(overrun), tid
	pt.IntervalNsec, pt.ValueNsec = int64(isec)*1e9+int64(insec), int64(vsec)*1e9+int64(vnsec)
	return pt, d.end("it_id clock_id si_signo it_sigev_notify sival_ptr overrun isec insec vsec vnsec")
}

// decodeItimer decodes itimer_entry (seconds and microseconds).
func decodeItimer(b []byte) (Itimer, error) {
	var v [4]uint64 // isec iusec vsec vusec
	d := protoDec{msg: "itimer_entry", b: b}
	for d.next() {
		if d.num >= 1 && d.num <= 4 {
			d.uint64(&v[d.num-1])
		}
	}
	return Itimer{IntervalUsec: int64(v[0]*1e6 + v[1]), ValueUsec: int64(v[2]*1e6 + v[3])}, d.end("isec iusec vsec vusec")
}

// decodeRlimits decodes task_rlimits_entry.
func (m *taskCoreMsg) decodeRlimits(b []byte) error {
	d := protoDec{msg: "task_rlimits_entry", b: b}
	for d.next() {
		if d.num == 1 {
			d.message("rlimits", func(b []byte) error {
				var rl unix.Rlimit
				e := protoDec{msg: "rlimit_entry", b: b}
				for e.next() {
					switch e.num {
					case 1:
						e.uint64(&rl.Cur)
					case 2:
						e.uint64(&rl.Max)
					}
				}
				m.rlimits = append(m.rlimits, rl)
				return e.end("cur max")
			})
		}
	}
	return d.end("")
}

// decodeSa decodes sa_entry: a signal's disposition.
func decodeSa(b []byte) (SigAction, error) {
	var sa SigAction
	d := protoDec{msg: "sa_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&sa.Handler)
		case 2:
			d.uint64(&sa.Flags)
		case 3:
			d.uint64(&sa.Restorer)
		case 4:
			d.uint64(&sa.Mask)
		}
	}
	return sa, d.end("sigaction flags restorer mask")
}

// mmMsg: mm_entry.
type mmMsg struct {
	fields [11]uint64 // mm_start_code .. mm_env_end
	exeID  uint32
	auxv   []uint64
	vmas   []vmaMsg
	dump   int32
	aios   []AIORing
	thpOff bool
}

func (m *mmMsg) decode(b []byte) error {
	d := protoDec{msg: "mm_entry", b: b}
	for d.next() {
		switch {
		case d.num >= 1 && d.num <= 11:
			d.uint64(&m.fields[d.num-1])
		case d.num == 12:
			d.uint32(&m.exeID)
		case d.num == 13:
			d.uint64s(&m.auxv)
		case d.num == 14:
			d.message("vmas", func(b []byte) error {
				var v vmaMsg
				err := v.decode(b)
				m.vmas = append(m.vmas, v)
				return err
			})
		case d.num == 15:
			d.int32(&m.dump)
		case d.num == 16:
			d.message("aios", func(b []byte) error {
				r, err := decodeAIORing(b)
				m.aios = append(m.aios, r)
				return err
			})
		case d.num == 17:
			d.bool(&m.thpOff)
		}
	}
	return d.end("mm_start_code mm_end_code mm_start_data mm_end_data mm_start_stack mm_start_brk mm_brk " +
		"mm_arg_start mm_arg_end mm_env_start mm_env_end exe_file_id")
}

// decodeAIORing decodes an aio_ring_entry.
func decodeAIORing(b []byte) (AIORing, error) {
	var r AIORing
	var n uint32
	d := protoDec{msg: "aio_ring_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&r.Addr)
		case 2:
			d.uint32(&r.NrReq)
		case 3:
			d.uint32(&n)
		}
	}
	r.Len = uint64(n)
	return r, d.end("id nr_req ring_len")
}

// vmaMsg: vma_entry.
type vmaMsg struct {
	start, end, pgoff, shmid uint64
	prot, flags, status      uint32
	madv                     uint64
}

func (m *vmaMsg) decode(b []byte) error {
	d := protoDec{msg: "vma_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.start)
		case 2:
			d.uint64(&m.end)
		case 3:
			d.uint64(&m.pgoff)
		case 4:
			d.uint64(&m.shmid)
		case 5:
			d.uint32(&m.prot)
		case 6:
			d.uint32(&m.flags)
		case 7:
			d.uint32(&m.status)
		case 8:
			d.note(protowire.VarintType) // fd: required, not read
		case 9:
			d.uint64(&m.madv)
		}
	}
	return d.end("start end pgoff shmid prot flags status fd")
}

// decodePagemapHead decodes pagemap_head.
func decodePagemapHead(b []byte, pagesID *uint32) error {
	d := protoDec{msg: "pagemap_head", b: b}
	for d.next() {
		if d.num == 1 {
			d.uint32(pagesID)
		}
	}
	return d.end("pages_id")
}

// pagemapEntry: pagemap_entry.
type pagemapEntry struct {
	vaddr    uint64
	nrPages  uint32
	inParent bool
	flags    uint32
}

func (m *pagemapEntry) decode(b []byte) error {
	d := protoDec{msg: "pagemap_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&m.vaddr)
		case 2:
			d.uint32(&m.nrPages)
		case 3:
			d.bool(&m.inParent)
		case 4:
			d.uint32(&m.flags)
		}
	}
	return d.end("vaddr nr_pages")
}

// ghostMsg: ghost_file_entry.
type ghostMsg struct {
	chunks bool
	size   uint64
}

func (m *ghostMsg) decode(b []byte) error {
	d := protoDec{msg: "ghost_file_entry", b: b}
	for d.next() {
		switch d.num {
		case 1, 2, 3:
			d.note(protowire.VarintType) // uid, gid, mode: required, not read
		case 9:
			d.bool(&m.chunks)
		case 10:
			d.uint64(&m.size)
		}
	}
	return d.end("uid gid mode")
}

// decodeGhostChunk decodes ghost_chunk_entry into c's off and len.
func decodeGhostChunk(b []byte, c *ghostChunk) error {
	var length, off uint64
	d := protoDec{msg: "ghost_chunk_entry", b: b}
	for d.next() {
		switch d.num {
		case 1:
			d.uint64(&length)
		case 2:
			d.uint64(&off)
		}
	}
	c.off, c.len = int64(off), int64(length)
	return d.end("len off")
}
