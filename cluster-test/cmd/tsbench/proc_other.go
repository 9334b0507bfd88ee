//go:build !linux

package main

import (
	"errors"
	"time"
)

// errNoProc is returned where the platform has no /proc to read CPU
// accounting from; the report then shows "n/a".
var errNoProc = errors.New("cpu accounting needs Linux /proc")

func findMemberPID(string) (int, error)           { return 0, errNoProc }
func processCPU(int) (time.Duration, error)       { return 0, errNoProc }
func machineCPU() (busy, total uint64, err error) { return 0, 0, errNoProc }
func cpuModel() string                            { return "" }
