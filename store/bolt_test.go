package store

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestBoltReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	cfg := Config{MaxPerSource: 1000}
	s, err := OpenBolt(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := fill(t, s, rand.New(rand.NewPCG(11, 12)), 200)
	if err := s.Remove(recs[0].Key, recs[0].Version); err != nil {
		t.Fatal(err)
	}
	want := records(t, s)
	keys, bytes := s.Stats()
	digest, _ := s.Digest(6)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenBolt(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := records(t, s); !equalRecords(got, want) {
		t.Fatalf("after reopen: %d records, differing from the %d stored", len(got), len(want))
	}
	k2, b2 := s.Stats()
	d2, _ := s.Digest(6)
	if k2 != keys || b2 != bytes || !slices.Equal(d2, digest) {
		t.Errorf("after reopen: stats %d/%d, want %d/%d; digest equal: %v", k2, b2, keys, bytes, slices.Equal(d2, digest))
	}
	// LWW and quotas go on from the reopened state.
	r := recs[1]
	r.Version.Time--
	if ok, _ := s.Put(r); ok {
		t.Error("after reopen, an older write applied")
	}
	src := map[string]int{}
	for _, r := range want {
		src[r.Source]++
	}
	if got := s.idx.sources; !maps(got, src) {
		t.Errorf("per-source counts after reopen = %v, want %v", got, src)
	}
}

func maps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != path {
		t.Errorf("Path = %q", s.Path())
	}
	// bbolt's lock is per open file, so a second open in the same process
	// sees it as another process would; it gives up after its timeout
	// rather than hanging.
	start := time.Now()
	if _, err := OpenBolt(path, Config{}); err == nil {
		t.Error("a second open of a store in use succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("second open took %v", d)
	}
}

// TestBoltCorrupt writes damaged records into a store's file: the store
// opens, drops them (counted), and keeps the sound record beside them.
func TestBoltCorrupt(t *testing.T) {
	good := appendMeta(nil, &item{version: ver(1, 1)})
	flipped := slices.Clone(good)
	flipped[5] ^= 0x10 // in the version: the header checksum fails
	inline := func(it item, value string) []byte {
		it.inline, it.size, it.summed, it.sum = true, len(value), true, checksum([]byte(value))
		return append(appendMeta(nil, &it), value...)
	}
	k := dbKey(Record{Key: "k"}.Target(), "k")
	longer := append(inline(item{version: ver(1, 1)}, "abc"), 'd')
	cut := inline(item{version: ver(1, 1), source: "10.0.0.1"}, "")[:metaFixed+3]
	inlineTombstone := inline(item{version: ver(1, 1), deleted: true}, "")
	apartWithValue := append(slices.Clone(good), "abc"...)
	tests := []struct {
		name string
		key  []byte
		meta []byte
	}{
		{"short key", []byte("abc"), good},
		{"key under the wrong target", dbKey(t0Target, "k"), good},
		{"bad header", dbKey(Record{Key: "k"}.Target(), "k"), []byte{9, 9, 9}},
		{"flipped header bit", dbKey(Record{Key: "k"}.Target(), "k"), flipped},
		{"inline value longer than its header says", k, longer},
		{"header of an inline value cut short", k, cut},
		{"inline tombstone", k, inlineTombstone},
		{"bytes after a header without an inline value", k, apartWithValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "store.db")
			s, err := OpenBolt(path, Config{})
			if err != nil {
				t.Fatal(err)
			}
			put(t, s, Record{Key: "sound", Value: []byte("v"), Version: ver(1, 1)})
			s.Close()
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRecords).Put(tt.key, tt.meta) })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			for round := range 2 { // the damaged record is gone from the file after the first
				s, err := OpenBolt(path, Config{})
				if err != nil {
					t.Fatalf("open %d: %v", round, err)
				}
				damaged, _ := s.Faults()
				if want := int64(1 - round); damaged != want {
					t.Errorf("open %d: %d damaged records counted, want %d", round, damaged, want)
				}
				if keys, _ := s.Stats(); keys != 1 {
					t.Errorf("open %d: %d keys, want the sound one", round, keys)
				}
				if r, ok := get(t, s, "sound"); !ok || string(r.Value) != "v" {
					t.Errorf("open %d: sound record lost: %+v", round, r)
				}
				s.Close()
			}
		})
	}
}

var t0Target = Record{Key: "t0"}.Target()

// crashChildEnv makes the test binary a writer that the parent kills.
const crashChildEnv = "STORE_TEST_CRASH_CHILD"

// TestBoltCrash kills a writing process with SIGKILL and checks that every
// write it had acknowledged is in the reopened store.
func TestBoltCrash(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("spawns a process")
	}
	path := filepath.Join(t.TempDir(), "store.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrash$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 40
	acked := -1
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		n, ok := strings.CutPrefix(lines.Text(), "acked ")
		if !ok {
			continue
		}
		if acked, err = strconv.Atoi(n); err != nil {
			t.Fatal(err)
		}
		if acked == killAfter {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked != killAfter {
		t.Fatalf("child acknowledged %d writes before it ended", acked)
	}
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i <= acked; i++ {
		key := fmt.Sprint("crash-", i)
		r, ok := get(t, s, key)
		if !ok || string(r.Value) != fmt.Sprint("value ", i) {
			t.Errorf("acknowledged %q lost: %+v, %v", key, r, ok)
		}
	}
}

// crashChild writes until killed, printing each acknowledged write.
func crashChild(path string) {
	s, err := OpenBolt(path, Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		if _, err := s.Put(Record{Key: fmt.Sprint("crash-", i), Value: fmt.Appendf(nil, "value %d", i), Version: ver(i, 1)}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("acked %d\n", i)
	}
}

// TestBoltFullDisk fills a small tmpfs: the write that does not fit fails
// with ErrFull, and everything acknowledged before survives, also a reopen.
func TestBoltFullDisk(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	defer func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	}()
	path := filepath.Join(dir, "store.db")
	var log syncBuffer
	s, err := OpenBolt(path, Config{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	value := make([]byte, 4000)
	var acked []string
	var full error
	for i := 0; i < 1000 && full == nil; i++ {
		key := fmt.Sprint("k", i)
		value[0] = byte(i)
		if _, err := s.Put(Record{Key: key, Value: value, Version: ver(i, 1)}); err != nil {
			full = err
			break
		}
		acked = append(acked, key)
	}
	if !errors.Is(full, ErrFull) {
		t.Fatalf("after %d writes: %v, want ErrFull", len(acked), full)
	}
	t.Logf("%d writes acknowledged, then: %v", len(acked), full)
	check := func(s Store, stage string) {
		t.Helper()
		for i, key := range acked {
			r, ok, err := s.Get(key)
			if err != nil || !ok || len(r.Value) != len(value) || r.Value[0] != byte(i) {
				t.Fatalf("%s: acknowledged %q: %v, %v", stage, key, ok, err)
			}
		}
		if keys, _ := s.Stats(); keys != len(acked) {
			t.Fatalf("%s: %d keys, want %d", stage, keys, len(acked))
		}
	}
	check(s, "after ENOSPC")
	// A batch that does not fit leaves the store as it was, in memory too:
	// an overwrite, a new key and a delete, all rolled back.
	before := records(t, s)
	digest, _ := s.Digest(4)
	applied, err := s.PutAll([]Record{
		{Key: acked[0], Value: []byte("new"), Version: ver(5000, 1)},
		{Key: "another", Value: value, Version: ver(5000, 1)},
		{Key: acked[1], Version: ver(5000, 1), Deleted: true},
		{Key: "big", Value: make([]byte, 60000), Version: ver(5000, 1)},
	})
	if !errors.Is(err, ErrFull) || applied != nil {
		t.Fatalf("PutAll on a full disk = %v, %v; want nil, ErrFull", applied, err)
	}
	d2, _ := s.Digest(4)
	if !equalRecords(records(t, s), before) || !slices.Equal(d2, digest) {
		t.Fatal("a failed batch changed the store")
	}
	check(s, "after a failed batch")
	// The replica says so in its log, once per writeWarnEvery however
	// many writes fail, and counts every one.
	if got := strings.Count(log.String(), "cannot write"); got != 1 || !strings.Contains(log.String(), "no space left") {
		t.Errorf("log has %d lines about failed writes, want 1 naming the cause: %s", got, log.String())
	}
	if _, werr := s.Faults(); werr != 2 {
		t.Errorf("Faults counts %d write errors, want 2", werr)
	}
	// The store stays usable for reads, closes cleanly and reopens whole.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, "after reopen")
}

// TestBoltInlineValues: a value up to inlineMax follows its header in one
// bbolt entry, one log operation; a larger one lies in the values bucket.
// A key that changes from one to the other, or to a tombstone, leaves no
// value apart behind, across reopens; removing or expiring a record
// removes whatever it held.
func TestBoltInlineValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	small, large := strings.Repeat("s", inlineMax), strings.Repeat("L", inlineMax+1)
	// held reports whether the file holds the key's header and a value
	// apart, and whether the header says inline.
	held := func(key string) (header, apart, inline bool) {
		t.Helper()
		k := dbKey(KeyTarget(key), key)
		err := s.view(func(tx *bolt.Tx) error {
			e := tx.Bucket(bucketRecords).Get(k)
			header, apart = e != nil, tx.Bucket(bucketValues).Get(k) != nil
			inline = header && e[1]&flagInline != 0
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	steps := []struct {
		value                 string
		deleted               bool
		wantApart, wantInline bool
	}{
		{value: large, wantApart: true},
		{value: small, wantInline: true},
		{value: large, wantApart: true},
		{deleted: true},
		{value: small, wantInline: true},
		{deleted: true},
		{value: large, wantApart: true},
		{value: "", wantInline: true},
	}
	wasApart := false
	for i, st := range steps {
		ops := s.txOps
		if !put(t, s, Record{Key: "k", Value: []byte(st.value), Deleted: st.deleted, Version: ver(i+1, 1)}) {
			t.Fatalf("step %d: put refused", i)
		}
		// Its header, its value apart, or the deletion of the one before.
		want := 1
		if st.wantApart || wasApart {
			want = 2
		}
		wasApart = st.wantApart
		if s.txOps > ops && s.txOps != ops+want { // else it checkpointed
			t.Errorf("step %d: the put took %d log operations, want %d", i, s.txOps-ops, want)
		}
		for round := range 2 {
			header, apart, inline := held("k")
			if !header || apart != st.wantApart || inline != st.wantInline {
				t.Fatalf("step %d, round %d: header %v, value apart %v, inline %v; want apart %v, inline %v",
					i, round, header, apart, inline, st.wantApart, st.wantInline)
			}
			r, ok := get(t, s, "k")
			if !ok || r.Deleted != st.deleted || string(r.Value) != st.value {
				t.Fatalf("step %d, round %d: Get = %q, deleted %v, %v", i, round, r.Value, r.Deleted, ok)
			}
			if round == 0 { // again after a reopen, from the file
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if s, err = OpenBolt(path, Config{}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, v := range []string{small, large} {
		put(t, s, Record{Key: v[:1], Value: []byte(v), Version: ver(100, 1)})
		if err := s.Remove(v[:1], ver(100, 1)); err != nil {
			t.Fatal(err)
		}
		if header, apart, _ := held(v[:1]); header || apart {
			t.Errorf("after removing a %d-byte value the file holds its header %v, its value apart %v", len(v), header, apart)
		}
		put(t, s, Record{Key: v[:1], Value: []byte(v), Version: ver(101, 1), Expires: time.Unix(0, 1)})
		if _, err := s.Expire(time.Now()); err != nil {
			t.Fatal(err)
		}
		if header, apart, _ := held(v[:1]); header || apart {
			t.Errorf("after expiring a %d-byte value the file holds its header %v, its value apart %v", len(v), header, apart)
		}
	}
}

// TestBoltOpensSmallValuesApart: a file written before flagInline holds
// every value apart, small ones too. It opens and reads as before, and a
// new write of such a key deletes the value apart.
func TestBoltOpensSmallValuesApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := OpenBolt(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	value := []byte("old small value")
	it := item{version: ver(1, 1), size: len(value), summed: true, sum: checksum(value)}
	k := dbKey(KeyTarget("old"), "old")
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRecords).Put(k, appendMeta(nil, &it)); err != nil {
			return err
		}
		return tx.Bucket(bucketValues).Put(k, value)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err = OpenBolt(path, Config{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, ok := get(t, s, "old"); !ok || string(r.Value) != string(value) {
		t.Fatalf("Get(old) = %q, %v", r.Value, ok)
	}
	if !put(t, s, Record{Key: "old", Value: []byte("new"), Version: ver(2, 1)}) {
		t.Fatal("put refused")
	}
	err = s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketValues).Get(k); v != nil {
			t.Errorf("the old value %q is still apart after an inline write", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := get(t, s, "old"); !ok || string(r.Value) != "new" {
		t.Fatalf("Get(old) after the write = %q, %v", r.Value, ok)
	}
}
