package ctl

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// endless is a reader that never ends, counting what was read from it.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	e.n += int64(len(p))
	return len(p), nil
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// TestReadBoundedStopsAtTheLimit: input up to the limit is read whole;
// past it, even an endless stream, reading stops just past the limit and
// says so; a read error names the input.
func TestReadBoundedStopsAtTheLimit(t *testing.T) {
	const limit = 1000
	b, over, err := readBounded(strings.NewReader(strings.Repeat("a", limit)), "f", limit)
	if err != nil || over || len(b) != limit {
		t.Errorf("input of exactly the limit: %d bytes, over %v, %v", len(b), over, err)
	}
	b, over, err = readBounded(bytes.NewReader(make([]byte, limit+1)), "f", limit)
	if err != nil || !over || b != nil {
		t.Errorf("input one byte past the limit: %d bytes, over %v, %v", len(b), over, err)
	}
	e := &endless{}
	if _, over, err := readBounded(e, "-", limit); err != nil || !over {
		t.Errorf("endless input: over %v, %v", over, err)
	}
	if e.n > 2*limit+512 {
		t.Errorf("read %d bytes of an endless input to refuse it at %d", e.n, limit)
	}
	if _, _, err := readBounded(failing{}, "rbac.yaml", limit); err == nil || !strings.Contains(err.Error(), "read rbac.yaml: disk on fire") {
		t.Errorf("failing input: %v", err)
	}
}
