//go:build race

package backend_test

// raceEnabled: the race detector is on. It instruments SQLite's
// transpiled C too, which makes CPU-bound sequential tests 13x slower.
const raceEnabled = true
