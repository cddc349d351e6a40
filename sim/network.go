package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// LatencyKind names a latency model.
type LatencyKind uint8

const (
	// Constant: every datagram takes Base.
	Constant LatencyKind = iota
	// Uniform: each pair of nodes has its own fixed delay, drawn uniformly
	// from [Min, Max]; the same pair always sees the same delay.
	Uniform
	// Internet: nodes sit at random points of a square Span wide (in
	// milliseconds of one-way delay); a datagram takes both ends' access
	// delay (1–10 ms each, drawn per node) plus the distance between them,
	// plus exponential jitter of mean Jitter·delay. The square's mean
	// distance is 0.52·Span, so Span 150ms gives a median RTT near 170 ms,
	// close to what measurements of the BitTorrent DHT report.
	Internet
)

// Latency is a latency model. ParseLatency reads it from the --latency
// flag; the zero value is Constant with no delay.
type Latency struct {
	Kind     LatencyKind
	Base     time.Duration // Constant
	Min, Max time.Duration // Uniform
	Span     time.Duration // Internet: side of the square
	Jitter   float64       // Internet: mean jitter as a fraction of the delay
}

// DefaultLatency is the Internet-like model.
var DefaultLatency = Latency{Kind: Internet, Span: 150 * time.Millisecond, Jitter: 0.05}

// ParseLatency reads a latency model: "constant:50ms" (or just "50ms"),
// "uniform:10ms-200ms", "internet" or "internet:150ms".
func ParseLatency(s string) (Latency, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "internet":
		l := DefaultLatency
		if arg != "" {
			d, err := time.ParseDuration(arg)
			if err != nil || d <= 0 {
				return Latency{}, fmt.Errorf("latency %q: internet:SPAN wants a positive duration such as 150ms", s)
			}
			l.Span = d
		}
		return l, nil
	case "uniform":
		lo, hi, ok := strings.Cut(arg, "-")
		a, err1 := time.ParseDuration(lo)
		b, err2 := time.ParseDuration(hi)
		if !ok || err1 != nil || err2 != nil || a < 0 || b < a {
			return Latency{}, fmt.Errorf("latency %q: want uniform:MIN-MAX, such as uniform:10ms-200ms", s)
		}
		return Latency{Kind: Uniform, Min: a, Max: b}, nil
	case "constant":
		d, err := time.ParseDuration(arg)
		if err != nil || d < 0 {
			return Latency{}, fmt.Errorf("latency %q: want constant:DURATION, such as constant:50ms", s)
		}
		return Latency{Kind: Constant, Base: d}, nil
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return Latency{}, fmt.Errorf("latency %q: want internet, internet:SPAN, uniform:MIN-MAX or constant:DURATION", s)
		}
		return Latency{Kind: Constant, Base: d}, nil
	}
}

func (l Latency) String() string {
	switch l.Kind {
	case Uniform:
		return fmt.Sprintf("uniform:%v-%v", l.Min, l.Max)
	case Internet:
		return fmt.Sprintf("internet:%v", l.Span)
	}
	return fmt.Sprintf("constant:%v", l.Base)
}

// place gives a new node its coordinates and access delay (Internet).
func (l Latency) place(n *node, rng *rand.Rand) {
	if l.Kind != Internet {
		return
	}
	span := float32(l.Span.Seconds() * 1000)
	n.x = rng.Float32() * span
	n.y = rng.Float32() * span
	n.access = 1 + 9*rng.Float32()
}

// base is the fixed part of the one-way delay from a to b, in
// nanoseconds. It is symmetric.
func (l Latency) base(a, b *node, ai, bi int32) int64 {
	switch l.Kind {
	case Uniform:
		if ai > bi {
			ai, bi = bi, ai
		}
		h := mix64(uint64(uint32(ai))<<32 | uint64(uint32(bi)))
		span := uint64(l.Max - l.Min)
		if span == 0 {
			return int64(l.Min)
		}
		return int64(l.Min) + int64(h%(span+1))
	case Internet:
		dx, dy := float64(a.x-b.x), float64(a.y-b.y)
		ms := float64(a.access+b.access) + math.Sqrt(dx*dx+dy*dy)
		return int64(ms * 1e6)
	}
	return int64(l.Base)
}

// delay is the one-way delay of one datagram.
func (l Latency) delay(a, b *node, ai, bi int32, rng *rand.Rand) int64 {
	d := l.base(a, b, ai, bi)
	if l.Kind == Internet && l.Jitter > 0 {
		d += int64(rng.ExpFloat64() * l.Jitter * float64(d))
	}
	return d
}

// mix64 is SplitMix64's finalizer: a cheap, well-spread hash of x.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Partition splits the network in two for a while: datagrams between the
// sides are lost from At (after the measured phase starts) until At+For,
// when it heals. Fraction of the nodes, chosen by a hash of their index,
// are on the small side.
type Partition struct {
	At       time.Duration `json:"at"`
	For      time.Duration `json:"for"`
	Fraction float64       `json:"fraction"`
}

// ParsePartition reads "AT+FOR:FRACTION", such as "2m+3m:0.5".
func ParsePartition(s string) (Partition, error) {
	times, frac, ok := strings.Cut(s, ":")
	at, dur, ok2 := strings.Cut(times, "+")
	var p Partition
	var err1, err2, err3 error
	p.At, err1 = time.ParseDuration(at)
	p.For, err2 = time.ParseDuration(dur)
	_, err3 = fmt.Sscanf(frac, "%g", &p.Fraction)
	if !ok || !ok2 || err1 != nil || err2 != nil || err3 != nil || p.At < 0 || p.For <= 0 || p.Fraction <= 0 || p.Fraction >= 1 {
		return Partition{}, fmt.Errorf("partition %q: want AT+FOR:FRACTION, such as 2m+3m:0.5 (a fraction strictly between 0 and 1)", s)
	}
	return p, nil
}

// side reports which side of a partition node i is on.
func (p Partition) side(i int32) bool {
	return float64(mix64(uint64(i)^0x5bd1e995)>>11)/(1<<53) < p.Fraction
}

// Session is a distribution of session lengths for churn.
type Session struct {
	// Shape is the Weibull shape; 1 (or 0) is the exponential
	// distribution. Measured DHT sessions are heavy-tailed, with shapes
	// around 0.5 (Stutzbach and Rejaie, "Understanding Churn in
	// Peer-to-Peer Networks", IMC 2006).
	Shape float64
}

// ParseSession reads "exp" or "weibull:SHAPE".
func ParseSession(s string) (Session, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "exp", "exponential", "":
		return Session{Shape: 1}, nil
	case "weibull":
		var k float64
		if _, err := fmt.Sscanf(arg, "%g", &k); err != nil || k <= 0 {
			return Session{}, fmt.Errorf("session %q: want weibull:SHAPE with a positive shape, such as weibull:0.5", s)
		}
		return Session{Shape: k}, nil
	}
	return Session{}, fmt.Errorf("session %q: want exp or weibull:SHAPE", s)
}

func (s Session) String() string {
	if s.Shape == 0 || s.Shape == 1 {
		return "exp"
	}
	return fmt.Sprintf("weibull:%g", s.Shape)
}

// draw returns a session length with the given mean.
func (s Session) draw(mean time.Duration, rng *rand.Rand) time.Duration {
	k := s.Shape
	if k == 0 || k == 1 {
		return time.Duration(rng.ExpFloat64() * float64(mean))
	}
	// Weibull by inversion, with the scale that gives the wanted mean:
	// mean = scale·Γ(1+1/k).
	scale := float64(mean) / math.Gamma(1+1/k)
	u := 1 - rng.Float64() // (0, 1]
	return time.Duration(scale * math.Pow(-math.Log(u), 1/k))
}

// meanRTT is the network's mean round-trip time in nanoseconds: twice the
// expected one-way delay (jitter included), averaged over pairs of nodes.
// Large networks are sampled, with a generator of its own so the runs'
// other random streams do not move.
func (s *Sim) meanRTT() float64 {
	n := len(s.nodes)
	if n < 2 {
		return 0
	}
	const samples = 1 << 16
	rng := rand.New(rand.NewPCG(s.cfg.Seed, 0x7274745f6d65616e))
	sum, cnt := 0.0, 0
	for range samples {
		i, j := int32(rng.IntN(n)), int32(rng.IntN(n))
		if i == j {
			continue
		}
		sum += float64(s.cfg.Latency.base(&s.nodes[i], &s.nodes[j], i, j))
		cnt++
	}
	if cnt == 0 {
		return 0
	}
	jitter := 1.0
	if s.cfg.Latency.Kind == Internet {
		jitter += s.cfg.Latency.Jitter
	}
	return 2 * sum / float64(cnt) * jitter
}
