// Package image is mmcr's on-disk format: CRIU image files (CRIU's
// protobuf messages, encoded and decoded by hand with protowire: see
// wire.go; go-criu's types serve the tests as the reference) plus one mmcr
// extension file and a manifest. It does no kernel calls: dump/ hands it a
// Tree and streams pages, restore/ gets the same Tree back.
//
// # Framing of a CRIU image file
//
//	[IMG_COMMON magic 0x54564319]   (absent in inventory.img)
//	[image magic]                   (e.g. CORE 0x55053847), little-endian uint32
//	{ uint32 length, length bytes of protobuf } ...   entries until EOF
//
// A pagemap image's first entry is a PagemapHead (pages_id), the rest are
// PagemapEntry {vaddr, nr_pages, flags = PE_PRESENT}; the pages themselves
// are in pages-<pages_id>.img, raw, in pagemap order. A ghost-file image is
// one GhostFileEntry (chunks = false) followed by the raw file content.
//
// # Files of an image directory (dir 0700, files 0600)
//
//	inventory.img              InventoryEntry (img_version 2, fdinfo_per_id)
//	pstree.img                 PstreeEntry per task, tree order (root first, ppid 0)
//	ids-PID.img                TaskKobjIdsEntry, every id = PID (crit finds fdinfo by it)
//	core-TID.img               CoreEntry per thread: gpregs, fpregs/xsave (as far as
//	                           CRIU's fields reach), clear_tid_addr, thread_core
//	                           (sigmask, sas, private pending signals, creds, rseq,
//	                           futex_rla/futex_rla_len: the robust list, comm:
//	                           the thread's own name, pdeath_sig, sched_policy/
//	                           sched_prio/sched_nice); the leader's
//	                           also has tc (comm, personality, rlimits, sigactions,
//	                           itimers, shared pending signals, child_subreaper,
//	                           oom_score_adj)
//	mm-PID.img                 MmEntry with one VmaEntry per VMA. status: CRIU's
//	                           VMA_AREA_*/VMA_{ANON,FILE}_{PRIVATE,SHARED} bits; shmid:
//	                           the File ID for file VMAs, the SharedObject ID for
//	                           shared-anon VMAs, a MEMFD file id for memfd VMAs.
//	                           [vvar_vclock] is a VVAR VMA marked in mmcr-ext.json
//	fs-PID.img                 FsEntry: cwd/root file ids, umask
//	fdinfo-PID.img             FdinfoEntry per fd (flags = FD_CLOEXEC, type REG, EXT,
//	                           EVENTFD, EVENTPOLL, PIPE, FIFO or UNIXSK); fds
//	                           that share an open file description name one entry
//	files.img                  FileEntry: ids 1..len(Tree.Files) are the Tree's files
//	                           (RegFileEntry: path, mode, size); then a MEMFD entry
//	                           per memfd object; then one entry per open
//	                           file description (flags, pos), or an
//	                           ExtFileEntry for external fds, an EventfdFileEntry
//	                           (flags, counter), an EventpollFileEntry (flags,
//	                           one tfd entry per registration: fd, events, data),
//	                           a PipeEntry (pipe_id: the pipe's inode, flags), a
//	                           FifoEntry (pipe_id, regf_id: the FIFO's file; flags
//	                           in mmcr-ext.json) or a UnixSkEntry (ino, type, state,
//	                           peer's ino or 0, sndbuf/rcvbuf, shutdown; unnamed)
//	pipes-data.img             PipeDataEntry per pipe (pipe_id, bytes, size), each
//	                           followed by the bytes unread in it
//	fifo-data.img              the same, for FIFOs
//	sk-queues.img              SkPacketEntry per message waiting at a unix socket
//	                           (id_for: the socket's file entry, length), each
//	                           followed by its bytes
//	pagemap-PID.img            a task's private pages  -> pages-N.img
//	pagemap-shmem-SHMID.img    a shared object's pages (vaddr = offset) -> pages-N.img
//	memfd-inode.img            MemfdInodeEntry per memfd object (inode_id = shmid =
//	                           SharedObject ID); memfd VMAs' shmid names a MEMFD
//	                           entry of files.img whose inode_id is that ID
//	ghost-file-ID.img          content of a deleted file (ID in hex, as CRIU)
//	remap-fpath.img            RemapFilePathEntry (GHOST) per ghost file, if any
//	mmcr-ext.json              what CRIU cannot express (see below)
//	manifest.json              written last: every file's name, size and CRC-32C
//
// # mmcr-ext.json (format "mmcr-ext", version 1)
//
// A JSON object: "root_ppid" (the root's real parent), "files" (per Tree
// file: dev, ino, mtime_nsec, uid, gid, deleted, renamed),
// "shared_objects" (id, dev, ino, size, memfd, name),
// "tasks" in pstree order, each with cap_amb, no_new_privs, mdwe, merge_any, "threads"
// (tid, the raw NT_X86_XSTATE bytes, base64, and timer_slack_ns when
// recorded), "vmas" in mm order (maps
// name, smaps VmFlags, vvar_vclock mark, and a FileID/ShmID the shmid field
// did not carry) and "fds" in fdinfo order (fd, kind, file id, external type,
// flags/pos of external fds, eventfd_semaphore). A reader refuses another format or version
// (ErrBadMagic, ErrUnsupported).
//
// # Memory shared copy-on-write with the parent (mmcr-ext version 2)
//
// A private page a child still shares with its parent at dump (fork gave
// both one physical page, as /proc/PID/pagemap's PFNs show, and neither
// wrote it since) is stored once, in the parent's pages. The child's VMA is
// then marked "from_parent": true (VMA.FromParent: the parent has a VMA it
// can be the fork's copy of, see Inheritable) and the child's
// "parent_pages" lists those pages as [start, end) address pairs
// (Task.ParentPages). The child's pagemap holds only its own pages. Restore
// forks the child from its parent once the parent's memory is in place,
// keeps the parent's pages listed in parent_pages, writes its own pagemap's
// pages and drops every other page of the VMA. An ext file using either
// field says version 2, so that a reader of version 1 refuses it rather
// than restore the child without those pages; one without says version 1.
//
// CRIU has no record for this: its PE_PARENT flag (and the old in_parent)
// means "in the parent image directory" of an incremental dump, not "the
// parent task's page", so it is not used. crit decodes every file as
// before; a CRIU restore of such an image would lack the shared pages in
// the children (CRIU cannot restore mmcr images anyway: mmcr-ext.json).
//
// # Guard regions, THP disabled but where advised (mmcr-ext version 3)
//
// A task's guard regions (madvise MADV_GUARD_INSTALL: pages that fault
// however they are touched, glibc 2.42+ puts one below each thread stack)
// are "guards" of its task entry, [start, end) address pairs
// (Task.Guards), each inside one VMA; no page is dumped there. Restore
// installs them again. A task whose huge pages are disabled but where
// madvised (Linux 6.18, PR_THP_DISABLE_EXCEPT_ADVISED; Mm.THPExceptAdvised)
// has "thp_except_advised": true. An ext file with either says version 3,
// so that a reader of versions 1-2 refuses it rather than restore the
// task with those pages readable or huge pages everywhere; a version 3
// reader reads versions 1-3.
//
// # Hugetlb
//
// An anonymous hugetlb VMA, private or shared, or one of a hugetlb memfd
// has MAP_HUGETLB and its page size's log2 in the MAP_HUGE_* bits of
// vma_entry.flags, as mmap takes them (VMA.HugePageSize); its pages are
// in the pagemaps in 4 KiB units like those of any anonymous memory. No
// other VMA may have those flags. The shared object of a shared one or of
// a memfd has its page size as "huge_page_size" in mmcr-ext.json
// (SharedObject.HugePageSize, ext version 4).
//
// # SysV segments
//
// A shared object that is a SysV segment has "sysv" in mmcr-ext.json
// (SharedObject.SysV, ext version 4): its key, id, mode (with SHM_DEST
// once removed) and owner; its VMAs are whole attachments. Its pages are
// dumped like any shared object's: restore needs them when the segment is
// gone and must be made again.
//
// # AIO contexts
//
// An AIO context's ring VMA has CRIU's VMA_AREA_AIORING status and an
// aio_ring_entry of mm_entry (Mm.AIORings): its address (the context id),
// length and the io_setup request count that makes a ring of that length;
// its pages are in the task's pagemap. A fork's copy of its parent's ring
// is a from_parent VMA without an entry.
//
// # NUMA memory policies (mmcr-ext version 4)
//
// A thread whose memory policy is not the default (set_mempolicy) has
// "mempolicy" in its ext thread entry: the mode with its flags and the
// node mask as 64-bit words (Thread.MemPolicy).
//
// # Locked future mappings (mmcr-ext version 4)
//
// A task that called mlockall(MCL_FUTURE) has "mlock_future": 2, or 6 with
// MCL_ONFAULT (Mm.MlockFuture); no /proc file shows it, dump learns it
// from a mapping of its own in the task. An ext file with it says version
// 4 (as one with a hugetlb or SysV shared object), so that an older
// reader refuses it rather than restore the task with its later memory
// unlocked; a version 4 reader reads versions 1-4.
//
// # Pipes, unix sockets, shared open files (mmcr-ext version 5)
//
// A pipe (or FIFO, or unix socket) fd is of kind "pipe" ("socket") in the
// ext file; one that shares its open file description with another fd
// (Tree FD.OpenID) names the same files.img entry in its fdinfo entry, and
// so do regular files, directories, devices and eventfds that share one.
// Pipes, sockets and descriptions are numbered in order of first use. An
// ext file with any of them says version 5, so that a reader of versions
// 1-4 refuses it rather than restore the sharers apart; a version 5 reader
// reads versions 1-5.
//
// # Zombies (mmcr-ext version 6)
//
// A child that had exited and was not yet reaped (Task.Zombie) is written
// as CRIU writes one: its pstree entry and a core-PID.img whose
// task_core_entry has task_state TASK_DEAD (2), exit_code its wait status
// and its comm, and no other image (no mm, fs, ids, fdinfo or pagemap);
// its ext task entry holds only its pid and one thread. A zombie is never
// the root nor a parent. An ext file with one says version 6; a version 6
// reader reads versions 1-6.
//
// Seccomp filters also make version 6: seccomp.img (CRIU's seccomp_entry)
// holds every filter of the tree once, each naming the one installed
// before it (prev); a thread with filters has seccomp_mode
// SECCOMP_MODE_FILTER and seccomp_filter, its last filter's index, in its
// thread_core_entry.
//
// File locks make version 6 too: filelocks.img (CRIU's file_lock_entry per
// lock: FL_POSIX 1, FL_FLOCK 2 or FL_OFD 4; F_RDLCK/F_WRLCK, or
// LOCK_SH/LOCK_EX for a flock; the task's pid and the fd; start and
// length, 0 to the end of the file), read into FD.Locks. So do POSIX
// timers: posix_timer_entry messages in the task core's timers (id, clock,
// signal, sigev_notify, sival_ptr, overrun, interval and time left in
// seconds and nanoseconds, the target thread of a SIGEV_THREAD_ID one).
//
// # Range memory policies, membarrier, memfd inodes, signalfds and
// timerfds (mmcr-ext version 7)
//
// A VMA with a NUMA memory policy of its own (mbind) has "mempolicy" in
// its ext VMA entry, as a thread's (VMA.MemPolicy). A task registered for
// membarrier commands has "membarrier", the mask
// MEMBARRIER_CMD_GET_REGISTRATIONS returns (Mm.Membarrier; CRIU keeps it
// in task_core_entry, which mmcr leaves alone). A memfd's object has its
// "seals", "mode", "uid", "gid" and "length" (also in CRIU's
// memfd_inode_entry). Signalfds and timerfds are CRIU's file entries of
// type SIGNALFD (signalfd_entry: flags, sigmask) and TIMERFD
// (timerfd_entry: clock, ticks, settime flags, time left and period),
// their ext fd kinds "signalfd" and "timerfd"; inotify fds CRIU's INOTIFY
// entries (inotify_file_entry with an inotify_wd_entry per watch, whose
// fh_entry carries the file handle in 64-bit words and the path dump
// found), ext kind "inotify"; pidfds an EXT file entry (CRIU's fd types
// have none), ext kind "pidfd" with "pidfd_pid", a task of the tree. An
// ext file with any of these says version 7; a version 7 reader reads
// versions 1-7.
//
// # Shared epolls and TCP listeners (mmcr-ext version 8)
//
// An epoll shared by several fds (a dup, or inherited across fork) is one
// EVENTPOLL file entry named by the fdinfo entries of all of them, as CRIU
// shares any open file description; every one of those fds lists its
// targets (FD.Epoll, alike), and restore registers them in the first fd
// of the tree that holds it, whose numbers they are.
//
// A TCP listener or UDP socket (Tree.InetSockets) is CRIU's INETSK file
// entry (inet_sk_entry: family, SOCK_STREAM and IPPROTO_TCP in state
// TCP_LISTEN 10, or SOCK_DGRAM and IPPROTO_UDP in state TCP_ESTABLISHED 1
// when connected, else TCP_CLOSE 7; src_port, dst_port, the backlog,
// src_addr and dst_addr as 32-bit words of the address in memory order,
// one for IPv4 and four for IPv6, zeros for no peer; v6only; sk_opts'
// so_sndbuf, so_rcvbuf, reuseaddr, so_priority, so_rcvlowat,
// so_dontroute, so_reuseport, so_broadcast, so_keepalive, a TCP socket's
// tcp_keepcnt, tcp_keepidle and tcp_keepintvl, so_oobinline, so_linger
// when on and so_buf_lock, InetSocket.Opts), its fds of ext kind "inet"
// naming that entry. An ext file with a shared epoll or an inet socket says version
// 8; a version 8 reader reads versions 1-8.
//
// # Owners of open file descriptions (mmcr-ext version 9)
//
// An fd whose open file description has an owner or a signal (F_SETOWN_EX,
// F_SETSIG: FD.Owner) has "owner" in its ext fd entry: "type" (F_OWNER_TID
// 0, F_OWNER_PID 1, F_OWNER_PGRP 2), "pid", a thread, task or process
// group of the tree, "signal" (0: SIGIO), and "uid" and "euid" of whoever
// set the owner (F_GETOWNER_UIDS). The description's file entry carries
// them in CRIU's fown_entry too (uid, euid, signum, pid_type as
// F_GETOWN_EX's type, pid; zeros without an owner), for CRIU's tools;
// restore reads the ext entry. O_ASYNC is in the file entry's flags. An ext file with
// an owner says version 9; a version 9 reader reads versions 1-9.
//
// # manifest.json (format "mmcr-image", version 1)
//
// Written by Writer.Commit after every other file, through a rename, so a
// directory without it is an unfinished dump (or, with an inventory.img but
// no mmcr-ext.json, a CRIU image mmcr did not write: ErrUnsupported).
// Checksums are CRC-32C: they catch truncation and bit rot at ~20 GB/s;
// sha256 (~1 GB/s here) halved the page writer's throughput. Open checks that every listed
// file exists with the listed size and CRC-32C checksum (computed while
// writing, so dump reads nothing back) and names the first one that does not.
//
// # Errors
//
// Errors about an image wrap ErrBadMagic, ErrCorrupt, ErrIncomplete or
// ErrUnsupported, most through a *FileError naming the file. Decoders
// bounds-check every size against the data and never panic on bad input.
//
// # Round trip
//
// Reader.Tree returns a Tree deep-equal to the one given to Commit, with one
// normalization: empty slices come back nil.
//
// # Concurrency
//
// Writer's methods may be called from several goroutines (one mutex guards
// its file lists); a PageWriter belongs to one goroutine. Reader holds no
// mutable state after Open.
package image
