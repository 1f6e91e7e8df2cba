//go:build race

package exporter_test

// raceEnabled: the race detector is on (go test -race).
const raceEnabled = true
