package recstore

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// TestS3BufferHugePages: a new one-PUT buffer is marked for huge pages
// (its mapping's VmFlags hold hg in /proc/self/smaps), so that its first
// use faults a page each 2 MiB: the bench's 29 files over https took
// 22,000 page faults a run with 4 KiB pages, 12,000 so (the plain copy
// 10,000). Skipped where the kernel has no transparent huge pages.
func TestS3BufferHugePages(t *testing.T) {
	probe := make([]byte, 4<<20)
	if err := syscall.Madvise(probe, syscall.MADV_HUGEPAGE); err != nil {
		t.Skipf("MADV_HUGEPAGE: %v (no transparent huge pages)", err)
	}
	s := &S3{partSize: 16 << 20, free: make(chan []byte, 1)}
	b := s.buffer(1000)
	addr := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	flags := vmFlags(t, addr)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("the buffer's mapping has VmFlags %q; want hg (MADV_HUGEPAGE)", flags)
	}
	runtime.KeepAlive(probe) // its mapping is not the buffer's
}

// vmFlags returns the VmFlags of the mapping of /proc/self/smaps holding
// addr.
func vmFlags(t *testing.T, addr uint64) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && a <= addr && addr < z
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.TrimSpace(flags)
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
