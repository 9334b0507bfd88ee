package main

import "time"

// procSet is the processes whose CPU use a round reports: this load
// generator and every member. On a machine whose cores are shared by the
// servers and the client, throughput alone cannot say who used the CPU.
type procSet struct {
	names []string       // report order: "tsbench", then members
	pids  map[string]int // 0 is this process
}

// cpuSnap is one reading of every process's CPU time and the machine's.
type cpuSnap struct {
	at          time.Time
	per         map[string]time.Duration // missing when unreadable
	busy, total uint64
	machineOK   bool
}

func (p *procSet) snap() cpuSnap {
	s := cpuSnap{at: time.Now(), per: map[string]time.Duration{}}
	for _, n := range p.names {
		if d, err := processCPU(p.pids[n]); err == nil {
			s.per[n] = d
		}
	}
	var err error
	s.busy, s.total, err = machineCPU()
	s.machineOK = err == nil
	return s
}

// fill sets r.cpu and r.busy from the readings before and after r's round.
func (p *procSet) fill(r *roundResult, before, after cpuSnap) {
	r.cpu = map[string]time.Duration{}
	for _, n := range p.names {
		b, ok1 := before.per[n]
		a, ok2 := after.per[n]
		if ok1 && ok2 {
			r.cpu[n] = a - b
		}
	}
	r.busy = -1
	if before.machineOK && after.machineOK && after.total > before.total {
		r.busy = float64(after.busy-before.busy) / float64(after.total-before.total)
	}
}
