package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestSpawnEnv: the environment a system gives its processes (-gomaxprocs)
// reaches them, beside the generator's own.
func TestSpawnEnv(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on this machine")
	}
	dir := t.TempDir()
	t.Setenv("KVLOAD_TEST_INHERITED", "yes")
	p := procs{env: []string{"GOMAXPROCS=1"}}
	if err := p.spawn(dir, "env", sh, "-c", `printf '%s %s' "$GOMAXPROCS" "$KVLOAD_TEST_INHERITED"`); err != nil {
		t.Fatal(err)
	}
	for _, c := range p.cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	p.cmds = nil
	got, err := os.ReadFile(filepath.Join(dir, "env.log"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "1 yes" {
		t.Errorf("the process saw GOMAXPROCS and the inherited variable as %q, want %q", got, "1 yes")
	}
}

func TestStatCPU(t *testing.T) {
	tests := []struct {
		name string
		stat string
		want time.Duration
		ok   bool
	}{
		{"plain", "4242 (dhtkit) S 1 4242 4242 0 -1 4194560 1517 0 0 0 250 75 0 0 20 0 9 0 123 0 0", 3250 * time.Millisecond, true},
		{"name with spaces and parentheses", "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5", 70 * time.Millisecond, true},
		{"no name", "7 a R 1", 0, false},
		{"truncated", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 3", 0, false},
		{"not a number", "7 (x) R 1 7 7 0 -1 0 0 0 0 0 3 x 0", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := statCPU([]byte(tt.stat))
			if got != tt.want || ok != tt.ok {
				t.Errorf("statCPU(%q) = %v, %v; want %v, %v", tt.stat, got, ok, tt.want, tt.ok)
			}
		})
	}
}
