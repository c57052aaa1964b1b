package main

import "fmt"

// exitError ends the command with exit code code. With err nil nothing is
// printed: the command has said what it had to (diff: 1 for "different");
// otherwise err is printed as any error is (diff: 2 for failures).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitError) Unwrap() error { return e.err }
