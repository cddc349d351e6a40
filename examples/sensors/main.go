// Command sensors is the OpenDHT walk-through's pollution demo on
// dhtkit: a small network on this machine where each sensor is a DHT node
// that puts signed JSON readings under one key, every sensor under a value
// id of its own, while viewers listen to the key and print each reading.
// At the end a viewer reads the key once: one value per sensor, its latest
// reading.
//
//	go run ./examples/sensors                       # Kademlia, 3 sensors, 5 readings each
//	go run ./examples/sensors -protocol chord -readings 10 -interval 2s
//
// Everything runs on 127.0.0.1 with ports the system picks.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	var o Options
	flag.StringVar(&o.Protocol, "protocol", "kademlia", "kademlia or chord")
	flag.IntVar(&o.Sensors, "sensors", 3, "sensors (each a DHT node)")
	flag.IntVar(&o.Viewers, "viewers", 2, "viewers listening to the key (each a DHT node)")
	flag.IntVar(&o.Readings, "readings", 5, "readings each sensor puts")
	flag.DurationVar(&o.Interval, "interval", time.Second, "time between a sensor's readings")
	timeout := flag.Duration("timeout", 2*time.Minute, "give up after this long")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "sensors:", err)
		os.Exit(2)
	}
	o.Out = os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sensors:", err)
		os.Exit(1)
	}
	fmt.Printf("\nget %q: %d values\n", Key, len(res.Final))
	for _, r := range res.Final {
		fmt.Printf("  sensor %s: reading %d, pollution %d%% at lat %.6f, long %.6f\n", r.Sensor, r.Seq, r.Level, r.Lat, r.Long)
	}
}
