//go:build !unix

package dhtkit

import "io/fs"

func inode(fs.FileInfo) uint64 { return 0 }
