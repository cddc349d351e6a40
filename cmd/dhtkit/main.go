// Command dhtkit runs a DHT node, queries a DHT, and demonstrates one.
//
//	dhtkit node --listen :6881 --bootstrap seed.example.org:6881
//	dhtkit ping 127.0.0.1:6881
//	dhtkit lookup TARGET --bootstrap 127.0.0.1:6881
//	dhtkit demo --nodes 20 --once
//
// Exit status: 0 success, 1 failure, 2 usage error, 3 not found.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/dhtkit/dhtkit"
	"github.com/dhtkit/dhtkit/kademlia"
	"github.com/dhtkit/dhtkit/krpc"
)

// Exit statuses.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

// exitError carries the exit status a failure should end the command with.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &exitError{exitNotFound, fmt.Errorf(format, args...)}
}

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		signal.Stop(sigs) // a second signal ends the process at once
		cancel(interrupted{sig.(syscall.Signal)})
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel(nil)
	os.Exit(code)
}

// interrupted is the cause of the command's context when a signal ends it.
type interrupted struct{ sig syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + signalName(i.sig) }

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// interruptStatus is the exit status of a command its context's end
// stopped: 128 + the signal's number, the shell's convention (130 for
// SIGINT, 143 for SIGTERM); a context canceled for another reason counts
// as SIGINT.
func interruptStatus(ctx context.Context) (int, string) {
	var in interrupted
	if errors.As(context.Cause(ctx), &in) {
		return 128 + int(in.sig), in.Error()
	}
	return 128 + int(syscall.SIGINT), "interrupted"
}

// run executes the command line args and returns the exit status. A
// command that ends cleanly when ctx ends (a node that handed its values
// over) exits 0; one that fails or stops short because ctx ended (SIGINT,
// SIGTERM) exits 130 or 143, after cleaning up, with one line that says so.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, isTerminal: termCheck}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if ctx.Err() != nil {
		code, why := interruptStatus(ctx)
		fmt.Fprintf(stderr, "dhtkit: %s %s\n", cmd.Name(), why)
		return code
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "dhtkit: ") {
		msg = "dhtkit: " + msg
	}
	if isTerminalWriter(stderr) { // errors quote keys and node answers
		msg = escapeString(msg)
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		fmt.Fprintln(stderr, msg)
		return ee.code
	case isCobraUsage(err):
		// cobra's own usage errors (unknown command, wrong argument
		// count) get the hint every other usage error has.
		fmt.Fprintf(stderr, "%s (%s)\n", msg, helpHint(cmd))
		return exitUsage
	}
	fmt.Fprintln(stderr, msg)
	return exitFailure
}

// helpHint is the hint a usage error ends with: "see dhtkit put --help".
func helpHint(cmd *cobra.Command) string { return "see " + cmd.CommandPath() + " --help" }

// isCobraUsage reports whether err is one of cobra's own usage errors.
func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "accepts ") ||
		strings.HasPrefix(m, "requires at least") || strings.HasPrefix(m, "unknown flag")
}

// globals are the flags every command shares, and the streams.
type globals struct {
	stdout, stderr io.Writer

	logLevel  string
	logFormat string
	network   string
	bootstrap []string
	alone     bool // --bootstrap none
	// networkKey is the key file of a private network with a key: the
	// node and every short-lived client node seal with it.
	networkKey string
	api        string
	tokenFile  string
	timeout    time.Duration

	log *slog.Logger
	// isTerminal reports whether a stream is a terminal (progress bars,
	// hints); tests replace it.
	isTerminal func(any) bool
	tap        func(kademlia.Direction, netip.AddrPort, *krpc.Msg) // crawl's observer
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "dhtkit",
		Short: "Run, query and study a Kademlia DHT (private network or BitTorrent Mainline)",
		Long: `dhtkit runs a distributed hash table node and talks to DHT networks.
By default nodes join the private network "dhtkit"; --network mainline makes
them standard BitTorrent DHT (BEP 5) nodes.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       buildVersion().String(),
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := checkNumbers(cmd); err != nil {
				return err
			}
			return g.setup()
		},
	}
	api := os.Getenv("DHTKIT_API")
	if api == "" {
		api = "http://127.0.0.1:6880"
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.network, "network", dhtkit.DefaultNetwork, `network name; "mainline" is the public BitTorrent DHT`)
	pf.StringVar(&g.networkKey, "network-key", "", "key file of a private network with a network key (dhtkit network-key FILE makes one)")
	pf.StringSliceVar(&g.bootstrap, "bootstrap", nil, `comma-separated host:port of nodes to join through; "none": a one-node network on purpose`)
	pf.StringVar(&g.api, "api", api, "HTTP API of a running node: a URL or HOST:PORT, or several separated by commas, tried in order (or $DHTKIT_API)")
	pf.StringVar(&g.tokenFile, "token", "", "file holding the HTTP API's token (or the token in $DHTKIT_TOKEN)")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "how long a protocol command may take")
	root.SetVersionTemplate("dhtkit {{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError("%v (%s)", err, helpHint(cmd))
	})
	root.AddCommand(newNodeCmd(g), newPingCmd(g), newLookupCmd(g), newGetPeersCmd(g),
		newAnnounceCmd(g), newCrawlCmd(g), newDemoCmd(g), newSimCmd(),
		dataCommand(newPutCmd(g)), dataCommand(newGetCmd(g)), dataCommand(newDelCmd(g)), dataCommand(newCancelCmd(g)), dataCommand(newWhereisCmd(g)),
		dataCommand(newStatusCmd(g)), dataCommand(newListenCmd(g)),
		newItemCmd(g), newKeyCmd(g), newNetworkKeyCmd(g), newVersionCmd(g), dataCommand(newKeysCmd(g)), dataCommand(newMembersCmd(g)),
		newRingCmd(g), newLoadCmd(g), newScrapeCmd(g))
	return root
}

func (g *globals) setup() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return usageError("--log-level %q: want debug, info, warn or error", g.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch g.logFormat {
	case "text":
		g.log = slog.New(slog.NewTextHandler(g.stderr, opts))
	case "json":
		g.log = slog.New(slog.NewJSONHandler(g.stderr, opts))
	default:
		return usageError("--log-format %q: want text or json", g.logFormat)
	}
	if g.network == "" {
		return usageError("--network must not be empty")
	}
	if err := checkAPI(g.api); err != nil {
		return err
	}
	if slices.Contains(g.bootstrap, "none") {
		// --bootstrap none: a node alone on purpose, contacting nobody.
		if len(g.bootstrap) != 1 {
			return usageError("--bootstrap none stands alone: it means a one-node network; drop it or the addresses")
		}
		g.alone, g.bootstrap = true, nil
	}
	for _, b := range g.bootstrap {
		if !strings.Contains(b, ":") {
			return usageError("--bootstrap %q: want host:port", b)
		}
	}
	return nil
}

// args checks the number of positional arguments, as a usage error.
func args(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError("%s wants %s (%s)", cmd.Name(), names, helpHint(cmd))
		}
		return nil
	}
}

// kademliaConfig is the engine configuration of the command's nodes.
func (g *globals) kademliaConfig() kademlia.Config {
	kc := kademlia.DefaultConfig()
	kc.Tap = g.tap
	return kc
}

func splitHostPort(s string) (string, string, error) { return net.SplitHostPort(s) }
