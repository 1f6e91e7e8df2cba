//go:build unix

package safefile

import "syscall"

// oNoFollow makes an open fail on a symbolic link, closing the gap
// between NotSymlink's check and the open.
const oNoFollow = syscall.O_NOFOLLOW
