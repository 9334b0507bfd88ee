//go:build !linux

package loadgen

import (
	"errors"
	"time"
)

// errNoProc is returned where the platform has no /proc to read CPU
// accounting from; the report then shows "n/a".
var errNoProc = errors.New("cpu accounting needs Linux /proc")

func FindMemberPID(string) (int, error)           { return 0, errNoProc }
func ProcessCPU(int) (time.Duration, error)       { return 0, errNoProc }
func MachineCPU() (busy, total uint64, err error) { return 0, 0, errNoProc }
func CPUModel() string                            { return "" }
