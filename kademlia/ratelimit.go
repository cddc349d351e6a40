package kademlia

import "github.com/dhtkit/dhtkit/guard"

// guardConfig is the part of the configuration package guard's limiter
// reads: the same bounds as Chord's.
func (c *Config) guardConfig() guard.Config {
	return guard.Config{
		RateLimit: c.RateLimit, RateBurst: c.RateBurst, RateBytes: c.RateBytes,
		GlobalRate: c.GlobalRate, GlobalBytes: c.GlobalBytes,
		TrustLoopback: c.TrustLoopback,
	}
}

// Guard returns the abuse bounds of c as package guard's Config, so that
// a Chord node configured through the same flags keeps the same bounds.
func (c Config) Guard() guard.Config { return c.guardConfig().WithDefaults() }

// setGuard sets the bounds of g in c.
func (c *Config) setGuard(g guard.Config) {
	c.RateLimit, c.RateBurst, c.RateBytes = g.RateLimit, g.RateBurst, g.RateBytes
	c.GlobalRate, c.GlobalBytes, c.TrustLoopback = g.GlobalRate, g.GlobalBytes, g.TrustLoopback
}
