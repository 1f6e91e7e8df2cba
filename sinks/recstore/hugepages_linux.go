package recstore

import "syscall"

// hugePages asks Linux to back b with huge pages where it can
// (MADV_HUGEPAGE: with transparent huge pages set to madvise, as often,
// only memory so marked gets them): a kept buffer's first use then takes
// a page fault each 2 MiB instead of each 4 KiB. Only advice: an error
// (a kernel without transparent huge pages) changes nothing.
func hugePages(b []byte) {
	// The range must begin on a page: Go's large objects begin on its own
	// 8 KiB pages.
	_ = syscall.Madvise(b, syscall.MADV_HUGEPAGE)
}
