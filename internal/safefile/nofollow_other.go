//go:build !unix

package safefile

// oNoFollow: no such flag here; NotSymlink's check stands alone.
const oNoFollow = 0
