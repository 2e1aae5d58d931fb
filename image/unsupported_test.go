package image

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/crit/images/mm"
	"github.com/checkpoint-restore/go-criu/v7/crit/images/pagemap"
	"google.golang.org/protobuf/proto"
)

// TestUnsupportedByName: images using CRIU features mmcr does not handle
// are refused with ErrUnsupported and the feature named.
func TestUnsupportedByName(t *testing.T) {
	_, _, files := sampleFiles(t)
	for _, tc := range []struct {
		name   string
		mangle func(m map[string][]byte)
		msg    string
		read   func(r *Reader) error
	}{
		{"pages in parent", func(m map[string][]byte) {
			m["pagemap-100.img"] = encodeImage(t, "PAGEMAP", &pagemap.PagemapHead{PagesId: proto.Uint32(1)},
				&pagemap.PagemapEntry{Vaddr: proto.Uint64(0x1000), NrPages: proto.Uint32(1), InParent: proto.Bool(true)})
		}, "parent image", func(r *Reader) error { _, _, err := r.pageRuns(pagemapName(100)); return err }},
		{"sysv ipc vma", func(m map[string][]byte) {
			var me mm.MmEntry
			if err := decodeOneBytes("mm-102.img", m["mm-102.img"], "MM", protoInto(&me)); err != nil {
				t.Fatal(err)
			}
			me.Vmas[0].Status = proto.Uint32(vmaAreaRegular | vmaAreaSysVIPC)
			m["mm-102.img"] = encodeImage(t, "MM", &me)
		}, "SysV IPC", nil},
		{"ext version", func(m map[string][]byte) {
			m[ExtName] = bytes.Replace(m[ExtName], []byte(`"version": 1`), []byte(`"version": 10`), 1)
		}, "mmcr-ext.json: version 10", nil},
		{"wrong magic", func(m map[string][]byte) {
			m["fs-100.img"] = m["mm-100.img"]
		}, "fs-100.img: holds a MM image, want FS", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string][]byte{}
			for k, v := range files {
				m[k] = v
			}
			tc.mangle(m)
			r := memReader(m)
			read := tc.read
			if read == nil {
				read = func(r *Reader) error { _, err := r.Tree(); return err }
			}
			err := read(r)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
			if tc.name != "wrong magic" && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%v is not ErrUnsupported", err)
			}
			if tc.name == "wrong magic" && !errors.Is(err, ErrBadMagic) {
				t.Fatalf("%v is not ErrBadMagic", err)
			}
		})
	}
}
