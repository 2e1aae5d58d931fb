package dump

import (
	"fmt"
	"os"

	"github.com/mmcr/mmcr/image"
	"github.com/mmcr/mmcr/mapfiles"
	"github.com/mmcr/mmcr/shmem"
	"golang.org/x/sys/unix"
)

// fileTable gives one image.File per inode across the whole tree, with
// dense IDs from 1, and remembers where a deleted file's content can be
// read for its ghost.
type fileTable struct {
	files []*image.File
	byKey map[[2]uint64]*image.File
	// ghostSrc is, per deleted regular file ID, a /proc path that opens
	// the inode (a map_files link or an fd link).
	ghostSrc map[uint32]string
}

func newFileTable() *fileTable {
	return &fileTable{byKey: make(map[[2]uint64]*image.File), ghostSrc: make(map[uint32]string)}
}

// add returns the File of r's inode, creating it on first sight. src is a
// /proc path that opens the inode, used if it is a deleted regular file.
func (t *fileTable) add(r mapfiles.ResolvedFile, src string) *image.File {
	k := [2]uint64{r.Dev, r.Ino}
	if f, ok := t.byKey[k]; ok {
		return f
	}
	f := &image.File{
		ID:        uint32(len(t.files) + 1),
		Path:      r.Path,
		Dev:       r.Dev,
		Ino:       r.Ino,
		Mode:      r.Mode,
		Size:      r.Size,
		MtimeNsec: r.MtimeNsec,
		UID:       r.UID,
		GID:       r.GID,
		Deleted:   r.Deleted,
		Renamed:   r.Renamed,
	}
	t.files = append(t.files, f)
	t.byKey[k] = f
	if f.Deleted && f.Mode&unix.S_IFMT == unix.S_IFREG {
		t.ghostSrc[f.ID] = src
	}
	return f
}

// dumpGhosts stores the content of every deleted regular file.
func (d *dumper) dumpGhosts() error {
	for _, f := range d.files.files {
		src, ok := d.files.ghostSrc[f.ID]
		if !ok || d.shm.Lookup(shmem.Key{Dev: f.Dev, Ino: f.Ino}) != nil {
			continue // not deleted, or a memfd whose content is a shared object's
		}
		if err := d.canceled(); err != nil {
			return err
		}
		if err := d.dumpGhost(f, src); err != nil {
			return err
		}
	}
	return nil
}

func (d *dumper) dumpGhost(f *image.File, src string) error {
	fh, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("open deleted file %s through %s: %w", f.Path, src, err)
	}
	defer fh.Close()
	// The size now, not at first sight: the file may have been written
	// since (only through a task that is now frozen, but be exact).
	id, err := mapfiles.IdentityOf(fh)
	if err != nil {
		return fmt.Errorf("stat deleted file %s through %s: %w", f.Path, src, err)
	}
	f.Size = id.Size
	if err := d.w.Ghost(f.ID, fh, id.Size); err != nil {
		return fmt.Errorf("store deleted file %s (%d bytes): %w", f.Path, id.Size, err)
	}
	d.log.Debug("ghost file", "path", f.Path, "size", id.Size)
	return nil
}
