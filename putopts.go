package dhtkit

import (
	"fmt"

	"github.com/dhtkit/dhtkit/store"
)

// check refuses put options no replica could honour, before anything is
// sent: a negative TTL (0 is the default; the CLI and HTTP API refuse 0
// as a written value, since a user who typed it meant something).
func (o PutOptions) check(key string) error {
	if o.TTL < 0 {
		return fmt.Errorf("dhtkit: put %q: a TTL of %v: want a positive duration, or 0 for the default: %w", shortKey(key), o.TTL, store.ErrInvalid)
	}
	return nil
}

// checkLarge refuses the options that a value stored as chunks cannot
// have.
func (o PutOptions) checkLarge(key string) error {
	if o.Permanent {
		return fmt.Errorf("dhtkit: put %q: %w: a permanent value must fit one record (%d bytes); a larger or signed chunked value is not kept alive", shortKey(key), ErrPermanent, chunkSize)
	}
	if o.conditional() {
		return fmt.Errorf("dhtkit: put %q: a conditional write is one record (%d bytes at most): %w", shortKey(key), chunkSize, store.ErrInvalid)
	}
	return nil
}
