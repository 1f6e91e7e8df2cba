//go:build !linux

package main

import "os/exec"

// diesWithBench does nothing where the kernel has no parent-death
// signal: there gw.stop alone ends the server, and a bench killed leaves
// it running.
func diesWithBench(*exec.Cmd) {}
