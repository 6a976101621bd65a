//go:build !linux

package moto

import "syscall"

// dieWithParent does nothing where the kernel has no parent-death signal:
// a test binary that dies without its cleanups leaves its server running.
func dieWithParent(*syscall.SysProcAttr) {}
