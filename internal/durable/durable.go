// Package durable holds the file-system step every crash-safe write in
// tokenstore ends with: making a directory's entries (a created, renamed,
// linked or removed file) survive a power loss.
package durable

import (
	"fmt"
	"os"
)

// SyncDir fsyncs directory dir, so the entries changed in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
