package sinks

import (
	"fmt"
	"os"
	"syscall"
)

// fileIdentity names one version of a file for the lost-state check's
// mark of the manifests it read (suppress.go): its device and inode, its
// size, its modification and change times to the nanosecond. The
// program replaces a manifest only by renaming a new file over it (a new
// inode, allocated while the old one still existed, and a change time
// the old one never had); any other change of a file changes its change
// time (which no user can set). "" when fi tells none of it: never
// trusted.
func fileIdentity(fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d:%d:%d.%09d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano(), st.Ctim.Sec, st.Ctim.Nsec)
}
