//go:build race

package edge

// raceEnabled says the tests run with the race detector, which allocates
// on its own.
const raceEnabled = true
