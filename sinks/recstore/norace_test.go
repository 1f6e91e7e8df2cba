//go:build !race

package recstore

const raceEnabled = false
