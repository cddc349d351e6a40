package main

import (
	"context"
	"testing"
	"time"

	"github.com/dhtkit/dhtkit"
)

// TestSensors is the must-show: 3 sensors put 5 signed readings
// each, concurrently, to one key; every listener hears all 15, and a get
// afterwards returns 3 values, the latest reading of each sensor. With
// either protocol the sensors put as fast as the network takes them: the
// replicas push every version to the viewers, no one polls.
func TestSensors(t *testing.T) {
	for _, protocol := range []string{dhtkit.Kademlia, dhtkit.Chord} {
		t.Run(protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			const sensors, readings, viewers = 3, 5, 3
			res, err := Run(ctx, Options{Protocol: protocol, Sensors: sensors, Viewers: viewers, Readings: readings})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Seen) != viewers {
				t.Fatalf("%d viewers reported, want %d", len(res.Seen), viewers)
			}
			for i, n := range res.Seen {
				if n != sensors*readings {
					t.Errorf("viewer %d heard %d readings, want %d", i+1, n, sensors*readings)
				}
			}
			if len(res.Final) != sensors {
				t.Fatalf("get returned %d values, want %d (%+v)", len(res.Final), sensors, res.Final)
			}
			names := map[string]bool{}
			for _, r := range res.Final {
				names[r.Sensor] = true
				if r.Seq != readings {
					t.Errorf("sensor %s: value holds reading %d, want the latest, %d", r.Sensor, r.Seq, readings)
				}
			}
			if len(names) != sensors {
				t.Errorf("values of %d distinct sensors, want %d", len(names), sensors)
			}
		})
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []Options{
		{Protocol: "pastry", Sensors: 3, Viewers: 1, Readings: 1},
		{Protocol: dhtkit.Kademlia, Sensors: 0, Viewers: 1, Readings: 1},
		{Protocol: dhtkit.Kademlia, Sensors: 3, Viewers: 0, Readings: 1},
		{Protocol: dhtkit.Kademlia, Sensors: 3, Viewers: 1, Readings: 0},
		{Protocol: dhtkit.Kademlia, Sensors: 3, Viewers: 1, Readings: 1, Interval: -time.Second},
	} {
		if err := o.check(); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
