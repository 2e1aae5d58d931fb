package image

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is. Every error the package returns about a broken or
// foreign image wraps one of them.
var (
	// ErrBadMagic: a file does not start with the CRIU magic it should.
	ErrBadMagic = errors.New("bad magic")
	// ErrCorrupt: a file is truncated, fails its checksum, or does not decode.
	ErrCorrupt = errors.New("corrupt image")
	// ErrIncomplete: the directory has no manifest or lacks a file.
	ErrIncomplete = errors.New("incomplete image")
	// ErrUnsupported: a valid CRIU feature this reader does not handle.
	ErrUnsupported = errors.New("unsupported image feature")
)

// FileError is an error about one file of an image directory. Its text is
// "image: NAME: MSG"; it unwraps to one of the sentinels.
type FileError struct {
	Name string // file name inside the image directory
	Msg  string
	Err  error // a sentinel
}

func (e *FileError) Error() string { return "image: " + e.Name + ": " + e.Msg }
func (e *FileError) Unwrap() error { return e.Err }

func fileErr(name string, sentinel error, format string, args ...any) error {
	return &FileError{Name: name, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// dirError is a message that unwraps to a sentinel without repeating it.
type dirError struct {
	msg string
	err error
}

func (e *dirError) Error() string { return e.msg }
func (e *dirError) Unwrap() error { return e.err }
