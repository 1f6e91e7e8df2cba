//go:build !race

package paging

// raceEnabled: the race detector is on (go test -race).
const raceEnabled = false
