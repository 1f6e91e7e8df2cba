//go:build !linux

package recstore

// hugePages is Linux's advice (hugepages_linux.go); nothing elsewhere.
func hugePages([]byte) {}
