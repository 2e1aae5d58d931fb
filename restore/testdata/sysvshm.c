/* sysvshm: a SysV shared memory segment (shmget, 64 KiB) attached by a
 * parent and, through fork, its child, across a dump and restore. Run as
 * "sysvshm KEY" the segment has that key and stays; as "sysvshm removed"
 * it is removed (IPC_RMID) once attached and lives on only while
 * attached; "sysvshm huge" is a removed one of huge pages (SHM_HUGETLB,
 * one 2 MiB page); "sysvshm locked" a removed one locked in memory
 * (shmctl SHM_LOCK), which must still be. On SIGTERM each task checks the data, that the memory is an
 * attachment of the segment with the dumped id (shmctl IPC_STAT: key,
 * size, two attachments), and the parent writes a mark the child must see
 * through its own attachment, which it then detaches (shmdt). Prints
 * PASS or the first FAIL. */
#include "vmatest.h"
#include <sys/shm.h>

#define SIZE (64 << 10)

static unsigned char *m;
static int id, removed, huge, locked;
static key_t key;

static unsigned char pat(size_t i) { return (unsigned char)(i * 7 + i / 4096 + 3); }

static int check(const char *who, int marked)
{
	for (size_t i = 0; i < SIZE; i++) {
		unsigned char want = i == SIZE - 1 && marked ? 0x5a : pat(i);
		if (m[i] != want) {
			printf("FAIL %s: byte %zu is %u, want %u\n", who, i, m[i], want);
			return 1;
		}
	}
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds)) {
		printf("FAIL %s: shmctl(%d, IPC_STAT): %m\n", who, id);
		return 1;
	}
	key_t want_key = removed ? IPC_PRIVATE : key;
	if (ds.shm_perm.__key != want_key || ds.shm_segsz != SIZE || ds.shm_nattch != 2 ||
	    !!(ds.shm_perm.mode & SHM_DEST) != removed || !!(ds.shm_perm.mode & SHM_LOCKED) != locked) {
		printf("FAIL %s: segment %d: key %#x size %zu attachments %lu mode %#o\n", who, id, ds.shm_perm.__key,
		       (size_t)ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_perm.mode);
		return 1;
	}
	struct vma_info vi = vma_smaps(m);
	if (!vi.found || has_flag(&vi, "ht") != huge) {
		printf("FAIL %s: attachment found %d, flags:%s", who, vi.found, vi.flags);
		return 1;
	}
	return 0;
}

static int check_child(void)
{
	if (check("child", 1))
		return 1;
	if (shmdt(m)) {
		printf("FAIL child: shmdt: %m\n");
		return 1;
	}
	return 0;
}

static int check_parent(void)
{
	int bad = check("parent", 0);
	m[SIZE - 1] = 0x5a;
	return bad;
}

int main(int argc, char **argv)
{
	huge = argc > 1 && strcmp(argv[1], "huge") == 0;
	locked = argc > 1 && strcmp(argv[1], "locked") == 0;
	removed = huge || locked || (argc > 1 && strcmp(argv[1], "removed") == 0);
	key = removed || argc < 2 ? IPC_PRIVATE : (key_t)strtol(argv[1], NULL, 0);
	id = shmget(key, SIZE, IPC_CREAT | IPC_EXCL | 0640 | (huge ? SHM_HUGETLB : 0));
	m = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	if (m == (void *)-1) {
		printf("FAIL shmget/shmat: %m\n");
		return 1;
	}
	if (removed && shmctl(id, IPC_RMID, NULL)) {
		printf("FAIL IPC_RMID: %m\n");
		return 1;
	}
	if (locked && shmctl(id, SHM_LOCK, NULL)) {
		printf("FAIL SHM_LOCK: %m\n");
		return 1;
	}
	for (size_t i = 0; i < SIZE; i++)
		m[i] = pat(i);
	install_term();
	return run_pair(NULL, check_child, check_parent);
}
