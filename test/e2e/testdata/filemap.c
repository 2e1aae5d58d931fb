/*
 * filemap: file mappings of every kind, in the run directory.
 *   shared.dat  MAP_SHARED rw: writes must reach the file, before and after
 *               restore, and file writes must show in the mapping
 *   priv.dat    MAP_PRIVATE rw, pages 2,3,9 modified; unmodified pages must
 *               still follow the file (proves it maps the file itself)
 *   ro.dat      MAP_SHARED read-only, from page offset 2 (pgoff != 0)
 *   renamed     ren-old.dat mapped MAP_SHARED rw, then renamed to ren-new.dat
 *   deleted     del.dat mapped MAP_SHARED rw and MAP_PRIVATE (page 1
 *               modified), then unlinked
 * After restore the map_files link of each mapping must stat to the same
 * inode as the file's path (deleted: st_nlink == 0).
 */
#include "common.h"

#define NP 16
static uint8_t *shr, *priv, *ro, *ren, *del, *delp;

static void same_inode(const void *p, size_t len, const char *path, const char *what)
{
	struct stat m, f;
	if (!map_files_stat(p, len, &m, what))
		return;
	if (stat(path, &f)) {
		failf("%s: stat %s: %s", what, path, strerror(errno));
		return;
	}
	if (m.st_dev != f.st_dev || m.st_ino != f.st_ino)
		failf("%s: mapping is inode %lu:%lu but %s is %lu:%lu", what, (unsigned long)m.st_dev,
		      (unsigned long)m.st_ino, path, (unsigned long)f.st_dev, (unsigned long)f.st_ino);
}

static uint8_t *map_file(const char *path, size_t len, int prot, int flags, off_t off)
{
	int fd = open(path, (prot & PROT_WRITE) && (flags & MAP_SHARED) ? O_RDWR : O_RDONLY);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	uint8_t *p = xmmap(NULL, len, prot, flags, fd, off, path);
	close(fd);
	return p;
}

int main(void)
{
	uint8_t *buf = malloc(NP * PAGE);
	install_term();

	write_file("shared.dat", NP * PAGE, 300);
	shr = map_file("shared.dat", NP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	fill(shr + 4 * PAGE, 4 * PAGE, 301, 0);
	if (msync(shr, NP * PAGE, MS_SYNC))
		die("msync: %s", strerror(errno));
	if (!pread_file("shared.dat", buf, 4 * PAGE, 4 * PAGE) || !check(buf, 4 * PAGE, 301, 0, "shared.dat before dump"))
		die("shared writes did not reach the file before dump");

	write_file("priv.dat", NP * PAGE, 310);
	priv = map_file("priv.dat", NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
	fill(priv + 2 * PAGE, 2 * PAGE, 311, 0);
	fill(priv + 9 * PAGE, PAGE, 312, 0);

	write_file("ro.dat", NP * PAGE, 320);
	ro = map_file("ro.dat", 8 * PAGE, PROT_READ, MAP_SHARED, 2 * PAGE);

	write_file("ren-old.dat", NP * PAGE, 330);
	ren = map_file("ren-old.dat", NP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	if (rename("ren-old.dat", "ren-new.dat"))
		die("rename: %s", strerror(errno));
	fill(ren, PAGE, 331, 0);

	write_file("del.dat", NP * PAGE, 340);
	del = map_file("del.dat", NP * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, 0);
	delp = map_file("del.dat", NP * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, 0);
	fill(delp + PAGE, PAGE, 342, 0);
	if (unlink("del.dat"))
		die("unlink: %s", strerror(errno));
	fill(del + 5 * PAGE, PAGE, 341, 0);

	write_pidfile();
	wait_term();

	/* shared.dat */
	check(shr, 4 * PAGE, 300, 0, "shared.dat map pages 0-3");
	check(shr + 4 * PAGE, 4 * PAGE, 301, 0, "shared.dat map pages 4-7 (written via map)");
	check(shr + 8 * PAGE, 8 * PAGE, 300, 8 * PAGE / 8, "shared.dat map pages 8-15");
	same_inode(shr, NP * PAGE, "shared.dat", "shared.dat");
	fill(shr + 10 * PAGE, PAGE, 302, 0);
	msync(shr, NP * PAGE, MS_SYNC);
	if (pread_file("shared.dat", buf, PAGE, 10 * PAGE))
		check(buf, PAGE, 302, 0, "shared.dat page 10 on disk after writing via the restored map");
	fill(buf, PAGE, 303, 0);
	if (pwrite_file("shared.dat", buf, PAGE, 12 * PAGE))
		check(shr + 12 * PAGE, PAGE, 303, 0, "shared.dat map page 12 after pwrite to the file");

	/* priv.dat */
	check(priv, 2 * PAGE, 310, 0, "priv.dat map pages 0-1");
	check(priv + 2 * PAGE, 2 * PAGE, 311, 0, "priv.dat map pages 2-3 (private copies)");
	check(priv + 4 * PAGE, 5 * PAGE, 310, 4 * PAGE / 8, "priv.dat map pages 4-8");
	check(priv + 9 * PAGE, PAGE, 312, 0, "priv.dat map page 9 (private copy)");
	check(priv + 10 * PAGE, 6 * PAGE, 310, 10 * PAGE / 8, "priv.dat map pages 10-15");
	same_inode(priv, NP * PAGE, "priv.dat", "priv.dat");
	if (pread_file("priv.dat", buf, NP * PAGE, 0))
		check(buf, NP * PAGE, 310, 0, "priv.dat on disk (private writes must not reach it)");
	fill(buf, PAGE, 313, 0);
	if (pwrite_file("priv.dat", buf, PAGE, 5 * PAGE))
		check(priv + 5 * PAGE, PAGE, 313, 0, "priv.dat map page 5 (unmodified) after pwrite to the file");
	if (pwrite_file("priv.dat", buf, PAGE, 3 * PAGE))
		check(priv + 3 * PAGE, PAGE, 311, PAGE / 8, "priv.dat map page 3 (private copy) after pwrite to the file");

	/* ro.dat */
	check(ro, 8 * PAGE, 320, 2 * PAGE / 8, "ro.dat map (pgoff 2)");
	same_inode(ro, 8 * PAGE, "ro.dat", "ro.dat");

	/* renamed */
	check(ren, PAGE, 331, 0, "renamed map page 0");
	check(ren + PAGE, (NP - 1) * PAGE, 330, PAGE / 8, "renamed map pages 1-15");
	same_inode(ren, NP * PAGE, "ren-new.dat", "renamed file");
	if (access("ren-old.dat", F_OK) == 0)
		failf("ren-old.dat exists again after restore");
	fill(ren + 2 * PAGE, PAGE, 332, 0);
	msync(ren, NP * PAGE, MS_SYNC);
	if (pread_file("ren-new.dat", buf, PAGE, 2 * PAGE))
		check(buf, PAGE, 332, 0, "ren-new.dat on disk after writing via the restored map");

	/* deleted */
	check(del, 5 * PAGE, 340, 0, "deleted shared map pages 0-4");
	check(del + 5 * PAGE, PAGE, 341, 0, "deleted shared map page 5 (written after unlink)");
	check(del + 6 * PAGE, 10 * PAGE, 340, 6 * PAGE / 8, "deleted shared map pages 6-15");
	check(delp, PAGE, 340, 0, "deleted private map page 0");
	check(delp + PAGE, PAGE, 342, 0, "deleted private map page 1 (private copy)");
	check(delp + 2 * PAGE, 3 * PAGE, 340, 2 * PAGE / 8, "deleted private map pages 2-4");
	check(delp + 5 * PAGE, PAGE, 341, 0, "deleted private map page 5 (shared write shows through)");
	check(delp + 6 * PAGE, 10 * PAGE, 340, 6 * PAGE / 8, "deleted private map pages 6-15");
	if (access("del.dat", F_OK) == 0)
		failf("del.dat exists again after restore");
	struct stat ds, dps;
	if (map_files_stat(del, NP * PAGE, &ds, "deleted shared map") &&
	    map_files_stat(delp, NP * PAGE, &dps, "deleted private map")) {
		if (ds.st_nlink != 0)
			failf("deleted file has st_nlink %lu after restore", (unsigned long)ds.st_nlink);
		if (ds.st_ino != dps.st_ino || ds.st_dev != dps.st_dev)
			failf("the two mappings of the deleted file map different inodes (%lu vs %lu)",
			      (unsigned long)ds.st_ino, (unsigned long)dps.st_ino);
		if (ds.st_size != (off_t)(NP * PAGE))
			failf("deleted file size %lld, want %lu", (long long)ds.st_size, NP * PAGE);
	}
	/* Writes through the shared map must reach the (deleted) inode. */
	fill(del + 7 * PAGE, PAGE, 343, 0);
	char path[128];
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)del, (unsigned long)del + NP * PAGE);
	if (pread_file(path, buf, PAGE, 7 * PAGE))
		check(buf, PAGE, 343, 0, "deleted file page 7 read through map_files after writing via the map");
	finish();
}
