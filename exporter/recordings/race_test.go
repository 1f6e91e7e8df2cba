//go:build race

package recordings

// raceEnabled: the race detector's shadow memory roughly triples the
// heap's share of resident memory.
const raceEnabled = true
