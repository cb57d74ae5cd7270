package policies

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
)

// fileRefusal says why a file was not read: it is not a regular file (a
// device such as /dev/zero would be read forever), or it is over the limit.
type fileRefusal struct {
	Kind  string // "a device", "a named pipe", "a socket", "a special file"; empty: too large
	Size  int64  // with too large: the size seen (-1: it grew while being read)
	Limit int64
}

func (r *fileRefusal) Error() string {
	switch {
	case r.Kind != "":
		return "not a regular file (" + r.Kind + ")"
	case r.Size < 0:
		return fmt.Sprintf("grew over the limit of %d bytes while being read", r.Limit)
	}
	return fmt.Sprintf("%d bytes, over the limit of %d bytes", r.Size, r.Limit)
}

// admit refuses what is not a regular file and files over limit, before a
// byte of them is read.
func admit(info fs.FileInfo, limit int64) *fileRefusal {
	if !info.Mode().IsRegular() {
		kind := "a special file"
		switch t := info.Mode().Type(); {
		case t&fs.ModeDevice != 0:
			kind = "a device"
		case t&fs.ModeNamedPipe != 0:
			kind = "a named pipe"
		case t&fs.ModeSocket != 0:
			kind = "a socket"
		}
		return &fileRefusal{Kind: kind}
	}
	if info.Size() > limit {
		return &fileRefusal{Size: info.Size(), Limit: limit}
	}
	return nil
}

// readAdmitted reads an open file that admit accepts, refusing one that
// grew past limit since (the check and the read are not atomic). A refusal
// comes back as a *fileRefusal.
func readAdmitted(f fs.File, limit int64) ([]byte, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if r := admit(info, limit); r != nil {
		return nil, r
	}
	// Sized from the file's size: io.ReadAll's doubling copied and faulted
	// in a 16 MB list several times over.
	buf := bytes.NewBuffer(make([]byte, 0, min(info.Size(), limit)+bytes.MinRead))
	_, err = buf.ReadFrom(io.LimitReader(f, limit+1))
	data := buf.Bytes()
	if err == nil && int64(len(data)) > limit {
		return nil, &fileRefusal{Size: -1, Limit: limit}
	}
	return data, err
}
