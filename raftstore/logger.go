package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// raftLogger adapts slog to raft.Logger. raft writes half a dozen info lines
// per election (pre-votes, votes, state changes) and more per membership
// change; the node writes one line of its own for each of those events
// (node.go, apply.go), so raft's info lines go to debug. Kept at info is
// raft's "became leader at term N", one line on the winner only, which
// tools read to count elections (cluster-test/campaign). Warnings and errors
// (quorum lost, a rejected message) stay what they are.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)            { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(f string, v ...any) { r.l.Debug(fmt.Sprintf(f, v...)) }
func (r raftLogger) Info(v ...any)             { r.info(fmt.Sprint(v...)) }
func (r raftLogger) Infof(f string, v ...any)  { r.info(fmt.Sprintf(f, v...)) }
func (r raftLogger) info(msg string) {
	if strings.Contains(msg, "became leader at term") {
		r.l.Info(msg)
		return
	}
	r.l.Debug(msg)
}
func (r raftLogger) Warning(v ...any)            { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(f string, v ...any) { r.l.Warn(fmt.Sprintf(f, v...)) }
func (r raftLogger) Error(v ...any)              { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(f string, v ...any)   { r.l.Error(fmt.Sprintf(f, v...)) }
func (r raftLogger) Fatal(v ...any)              { r.fatal(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(f string, v ...any)   { r.fatal(fmt.Sprintf(f, v...)) }
func (r raftLogger) Panic(v ...any)              { r.panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(f string, v ...any)   { r.panic(fmt.Sprintf(f, v...)) }
func (r raftLogger) fatal(msg string) {
	r.l.Log(context.Background(), slog.LevelError+4, msg)
	os.Exit(1)
}
func (r raftLogger) panic(msg string) {
	r.l.Log(context.Background(), slog.LevelError+4, msg)
	panic(msg)
}
