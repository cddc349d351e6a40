package main

import (
	"testing"
	"time"
)

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
