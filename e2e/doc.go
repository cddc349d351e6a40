// Package e2e holds end-to-end tests of dhtkit: they build the dhtkit
// binary once and run real `dhtkit node` processes on 127.0.0.1, talking to
// them through the HTTP API and the CLI the way an operator would. They
// kill nodes with SIGKILL, stop them with SIGTERM, restart them from their
// data directories, add nodes, and check that no acknowledged value is
// lost and that every byte read back is the byte written (SHA-256).
//
// The default run takes a few minutes at most. `go test ./e2e -args -long`
// (or DHTKIT_E2E_LONG=1) stores 50 MB files in the kill test, as the
// issue asks; -short skips the package.
//
// TestFault is the fault suite (package fault has its checker and network
// nemesis): short scenarios by default, the full ones with -args -full.
package e2e
