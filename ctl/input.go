package ctl

import (
	"fmt"
	"io"
)

// readBounded reads r to its end, but never more than limit+1 bytes: past
// limit it stops and reports over, so a huge file or an endless stdin is
// refused with a clear error instead of being held in memory first.
func readBounded(r io.Reader, name string, limit int64) (b []byte, over bool, err error) {
	if limit < 0 {
		limit = 0
	}
	b, err = io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, true, nil
	}
	return b, false, nil
}
