package store

import (
	"os"
	"syscall"
)

// fdatasync writes f's data to the disk, and of its metadata only what
// reading the data back needs (its size): one flush where fsync may cost
// two.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
