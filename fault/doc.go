// Package fault is dhtkit's fault suite minus the processes: a
// Jepsen-style history of client operations, a checker that finds the
// anomalies a replicated key-value store must not show (acknowledged
// writes lost, stale reads, resurrected deletes), a test of convergence
// (every key one version on all its replicas), an HTTP client that
// records every operation it makes through a node's API, and nemeses
// that act on the network (Linux network namespaces on a bridge,
// iptables partitions, tc netem loss and delay).
//
// The scenarios that run real `dhtkit node` processes under these
// nemeses live in e2e/fault_test.go, beside the helpers that start and
// kill nodes; see the README ("Fault suite") for how to run them.
package fault
