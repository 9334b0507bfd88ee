package loadgen

import "time"

// ProcSet is the processes whose CPU use a round reports: this load
// generator and every member. On a machine whose cores are shared by the
// servers and the client, throughput alone cannot say who used the CPU.
type ProcSet struct {
	Names []string       // report order: "tsbench", then members
	PIDs  map[string]int // 0 is this process
}

// CPUSnap is one reading of every process's CPU time and the machine's.
type CPUSnap struct {
	at          time.Time
	per         map[string]time.Duration // missing when unreadable
	Busy, total uint64
	machineOK   bool
}

func (p *ProcSet) Snap() CPUSnap {
	s := CPUSnap{at: time.Now(), per: map[string]time.Duration{}}
	for _, n := range p.Names {
		if d, err := ProcessCPU(p.PIDs[n]); err == nil {
			s.per[n] = d
		}
	}
	var err error
	s.Busy, s.total, err = MachineCPU()
	s.machineOK = err == nil
	return s
}

// fill sets r.CPU and r.Busy from the readings before and after r's round.
func (p *ProcSet) Fill(r *RoundResult, before, after CPUSnap) {
	r.CPU = map[string]time.Duration{}
	for _, n := range p.Names {
		b, ok1 := before.per[n]
		a, ok2 := after.per[n]
		if ok1 && ok2 {
			r.CPU[n] = a - b
		}
	}
	r.Busy = -1
	if before.machineOK && after.machineOK && after.total > before.total {
		r.Busy = float64(after.Busy-before.Busy) / float64(after.total-before.total)
	}
}
