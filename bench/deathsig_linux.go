package main

import (
	"os/exec"
	"syscall"
)

// diesWithBench has the kernel kill cmd when the bench ends, however it
// ends (killed, SIGTERM, a panic): a server it started must not outlive
// it. Pdeathsig fires when the thread that started cmd ends; the Go
// runtime ends a thread only when a goroutine locked to it
// (runtime.LockOSThread) returns, which the bench never does: in effect,
// when the bench's process ends.
func diesWithBench(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
