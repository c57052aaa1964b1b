// Package integration holds the end-to-end suites: they build the
// spraydryfs command, store the fixture tree (package fixture) in a store
// and check that every way of reading it back returns the same tree.
package integration
