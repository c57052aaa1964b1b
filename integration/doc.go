// Package integration holds the end-to-end suites: they build the
// spraydryfs command, store the fixture tree (package fixture) in a store
// and check that every way of reading it back returns the same tree.
//
// The longest suites (the conformance suites, the Linux guest, the killed
// pull) call t.Parallel: they run two at a time after the others, and
// spend much of their time waiting on clients, the kernel or a VM. Tests
// that set the environment (the S3 tests) or time a failure stay serial.
package integration
