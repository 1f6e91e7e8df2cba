//go:build !unix

package main

import (
	"os"
	"time"
)

// peakRSS is not measured here: the benchmark reports 0.
func peakRSS(*os.ProcessState) int64 { return 0 }

// selfCPU is not measured here: the benchmark reports 0.
func selfCPU() time.Duration { return 0 }
