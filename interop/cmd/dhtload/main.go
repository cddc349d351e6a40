// Command dhtload measures BitTorrent DHT servers side by side under one
// loopback load generator: a bare Go UDP echo server (the floor), a dhtkit
// node, github.com/anacrolix/dht/v2 and libtorrent (Debian's
// python3-libtorrent). Each server runs in a process of its own, one at a
// time; for ping, find_node and get_peers the generator keeps a window of
// queries in flight on several sockets and counts the answers, and the
// server's CPU time (utime+stime from /proc/PID/stat) is divided by them.
//
//	dhtload compare [-duration 5s] [-update ../BENCHMARKS.md]
//
// Every address is on 127.0.0.1; nothing leaves the machine.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "compare":
		err = compareCmd(os.Args[2:])
	case "serve":
		err = serveCmd(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhtload:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: dhtload compare [flags]   measure the servers side by side (-h for flags)
       dhtload serve -kind K      run one server (used by compare)`)
	os.Exit(2)
}

func newCmd(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

func serveCmd(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	kind := fs.String("kind", "", "echo, dhtkit or anacrolix")
	seeds := fs.String("seeds", "", "comma-separated contacts to ping first")
	fs.Parse(args)
	var as []netip.AddrPort
	for _, s := range strings.Split(*seeds, ",") {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddrPort(s)
		if err != nil {
			return err
		}
		if !a.Addr().IsLoopback() {
			return fmt.Errorf("seed %v is not a loopback address", a)
		}
		as = append(as, a)
	}
	return serve(*kind, as)
}

func compareCmd(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	servers := fs.String("servers", "echo,dhtkit,anacrolix,libtorrent", "servers to measure, in order")
	meths := fs.String("methods", strings.Join(methods, ","), "query methods to measure")
	var cfg loadConfig
	fs.IntVar(&cfg.Sockets, "sockets", 4, "generator sockets")
	fs.IntVar(&cfg.Window, "window", 32, "queries in flight per socket")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "load before measuring, per server and method")
	fs.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time per server and method")
	nContacts := fs.Int("contacts", 100, "routing contacts each server is primed with")
	update := fs.String("update", "", "BENCHMARKS.md to update between its dhtload markers")
	fs.Parse(args)

	nk, cleanup, err := newNetKey()
	if err != nil {
		return err
	}
	defer cleanup()
	cs, err := startContacts(*nContacts, nk)
	if err != nil {
		return err
	}
	defer cs.close()

	var results []serverResult
	for _, name := range strings.Split(*servers, ",") {
		var s *server
		var err error
		switch name {
		case "libtorrent":
			s, err = startLibtorrent(cs.addrs)
		default:
			s, err = startChild(name, cs.addrs)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "dhtload: skipping %s: %v\n", name, err)
			continue
		}
		sr := serverResult{name: name, table: s.table}
		scfg := cfg
		scfg.Net = nk.forServer(name)
		if name != "echo" {
			sr.primed = waitPrimed(s.addr, 20*time.Second, scfg.Net)
		}
		for _, m := range strings.Split(*meths, ",") {
			r, err := runLoad(s.addr, s.pid, m, name == "echo", scfg)
			if err != nil {
				s.close()
				return fmt.Errorf("%s %s: %w", name, m, err)
			}
			fmt.Fprintf(os.Stderr, "%-10s %-9s %9.0f answered/s %7.1f µs CPU/answer\n",
				name, m, r.Rate(), us(r.CPUPerAnswer()))
			sr.results = append(sr.results, r)
		}
		s.close()
		results = append(results, sr)
	}

	cmdline := os.Getenv("DHTLOAD_CMDLINE") // set by bench/compare.sh
	if cmdline == "" {
		cmdline = "dhtload compare " + strings.Join(args, " ")
	}
	table := render(results, cfg, *nContacts)
	fmt.Print(table)
	if *update != "" {
		return updateFile(*update, machine(), strings.TrimSpace(cmdline), cfg, table)
	}
	return nil
}

type serverResult struct {
	name    string
	table   int // routing entries after priming, where the server says
	primed  int // contacts in a find_node answer before the load
	results []loadResult
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// waitPrimed asks find_node until the answer carries 8 contacts or timeout
// passes, and returns the number it last carried.
func waitPrimed(to netip.AddrPort, timeout time.Duration, nk netKey) int {
	deadline := time.Now().Add(timeout)
	best := 0
	for time.Now().Before(deadline) {
		r, err := runLoad(to, 0, "find_node", false, loadConfig{Sockets: 1, Window: 1, Duration: 100 * time.Millisecond, Net: nk})
		if err == nil && r.WithNodes > 0 {
			best = int(r.NodesPer + 0.5)
			if best >= 8 {
				return best
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return best
}

// render formats the results as a Markdown table with ratios against
// dhtkit.
func render(rs []serverResult, cfg loadConfig, contacts int) string {
	base := map[string]loadResult{}
	for _, sr := range rs {
		if sr.name == "dhtkit" {
			for _, r := range sr.results {
				base[r.Method] = r
			}
		}
	}
	rows := [][]string{{"server", "method", "answered/s", "CPU µs/answer", "rate vs dhtkit", "CPU vs dhtkit",
		"nodes/answer", "lost", "errors", "RSS MiB"}}
	for _, sr := range rs {
		for _, r := range sr.results {
			rate, cpu := "", ""
			if d, ok := base[r.Method]; ok && d.Rate() > 0 && d.CPUPerAnswer() > 0 {
				rate = fmt.Sprintf("%.2f×", r.Rate()/d.Rate())
				cpu = fmt.Sprintf("%.2f×", float64(r.CPUPerAnswer())/float64(d.CPUPerAnswer()))
			}
			nodes := "-"
			if r.WithNodes > 0 {
				nodes = fmt.Sprintf("%.1f", r.NodesPer)
			}
			rows = append(rows, []string{sr.name, r.Method, fmt.Sprintf("%.0f", r.Rate()),
				fmt.Sprintf("%.1f", us(r.CPUPerAnswer())), rate, cpu, nodes,
				fmt.Sprint(r.Lost), fmt.Sprint(r.Errors), fmt.Sprintf("%.0f", float64(r.RSS)/(1<<20))})
		}
	}
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(row []string, right func(i int) bool) {
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if right(i) {
				fmt.Fprintf(&b, "| %s%s ", pad, c)
			} else {
				fmt.Fprintf(&b, "| %s%s ", c, pad)
			}
		}
		b.WriteString("|\n")
	}
	numeric := func(i int) bool { return i >= 2 }
	line(rows[0], func(int) bool { return false })
	sep := make([]string, len(width))
	for i, w := range width {
		sep[i] = strings.Repeat("-", w)
		if numeric(i) {
			sep[i] = strings.Repeat("-", w-1) + ":"
		}
	}
	line(sep, func(int) bool { return false })
	for _, row := range rows[1:] {
		line(row, numeric)
	}
	fmt.Fprintf(&b, "\nGenerator: %d sockets × %d queries in flight, %v warm-up, %v measured per row; "+
		"servers primed with %d contacts; %s.\n", cfg.Sockets, cfg.Window, cfg.Warmup, cfg.Duration, contacts, runtime.Version())
	for _, sr := range rs {
		if sr.name != "echo" {
			fmt.Fprintf(&b, "%s: %d contacts in a find_node answer before the load", sr.name, sr.primed)
			if sr.table > 0 {
				fmt.Fprintf(&b, ", %d routing entries", sr.table)
			}
			b.WriteString(".\n")
		}
	}
	return b.String()
}

// machine describes this machine: cores and CPU model.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (nproc), %s", runtime.NumCPU(), model)
}

// revision names the checked-out commit of the working directory's
// repository, if any.
func revision() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "(unknown commit)"
	}
	rev := "at " + strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

const (
	beginMark = "<!-- dhtload:begin -->"
	endMark   = "<!-- dhtload:end -->"
)

// updateFile replaces the text between the dhtload markers of path (or
// appends a marked section) with the results.
func updateFile(path, machine, cmdline string, cfg loadConfig, table string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	section := fmt.Sprintf("%s\nMeasured %s on %s, dhtkit %s, with\n`%s`:\n\n%s%s",
		beginMark, time.Now().UTC().Format("2006-01-02"), machine, revision(), cmdline, table, endMark)
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + section + s[j+len(endMark):]
	} else {
		s += "\n" + section + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
