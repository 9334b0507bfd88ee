// Package clustertest holds tests that run real tokenstore processes on
// loopback: started, SIGKILLed and restarted like production members. The
// quick ones run in `make test`; long fault campaigns are behind the
// clustertest build tag (`make cluster-test`).
package clustertest
