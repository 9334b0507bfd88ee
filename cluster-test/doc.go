// Package clustertest holds tests that run real tokenstore processes on
// loopback: started, SIGKILLed, SIGSTOPped, partitioned and restarted like
// production members. The quick ones run in `make test`, among them
// TestFaultsShort, a 25-second fault campaign; the long campaigns are
// behind the clustertest build tag (`make cluster-test`).
//
// The pieces live in subpackages: harness starts members and puts a
// controllable proxy on every peer link, history records what clients did
// and checks it (porcupine and the other checks), campaign draws a fault
// schedule from a seed and runs clients and faults together. See
// docs/cluster-test.md for how to run them, what is checked and how to read
// a failure.
package clustertest
