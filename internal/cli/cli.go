// Package cli is the berth command: a table of subcommands over the
// standard library's flag package, each a function
//
//	func(ctx context.Context, e *env, args []string) error
//
// that gets the arguments after its name and an env carrying the streams,
// the clock and, once the command has parsed its flags, the settings every
// client command shares (--server, --token, -o). A command reports failure
// by returning an error; Main turns it into the exit status:
//
//	0    success (and -h)
//	1    an error, printed as "berth: <message>"; jobs wait also exits 1
//	     when the job failed or was cancelled, so scripts can rely on it
//	2    a usage error: unknown command or flag, wrong arguments
//	130  interrupted (SIGINT or SIGTERM cancelled the context)
//
// A new command builds its FlagSet with e.flags, adds e.clientFlags if it
// talks to a server, parses with fs.parse (flags may come before or after
// the positional arguments) and reports bad arguments with fs.usageErr.
package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/berthhq/berth/internal/client"
	"github.com/berthhq/berth/internal/clock"
)

// Version is the version berth reports; release builds set it with
// -ldflags "-X github.com/berthhq/berth/internal/cli.Version=v1.2.3".
var Version = "dev"

// DefaultServer is the server client commands talk to when neither
// --server nor BERTH_SERVER says otherwise.
const DefaultServer = "http://127.0.0.1:8080"

// env is what a command runs with.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	clock          clock.Clock
	// terminal is true when stdout is a terminal (a character device):
	// jobs wait then rewrites one progress line instead of printing a line
	// per change.
	terminal bool
	// hc is the HTTP client of client commands; nil is a default client.
	hc *http.Client

	// The shared settings, set by the flags clientFlags adds.
	server, token, output string
}

// command is one entry of a command table.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"submit", "submit a job (from a JSON file, or one command after --)", runSubmit},
		{"jobs", "list, show, wait for and cancel jobs; their logs and events", runJobs},
		{"clusters", "list, show, drain, terminate and kill clusters", runClusters},
		{"pools", "list and show pools with their live counts; unblock them", runPools},
		{"serve", "run the Berth server", runServe},
		{"demo", "run a demonstration of Berth on local clusters", runDemo},
		{"sim", "run a workload under Berth and today's patterns in simulated time, or check Berth under faults", runSim},
		{"emulator", "serve an emulator of AWS EMR (and of S3 for its logs) on a loopback address", runEmulator},
		{"version", "print berth's version", runVersion},
		{"help", "show help for a command", runHelp},
	}
}

// Main runs berth with args (without the program name) and returns the
// exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{
		stdin:    stdin,
		stdout:   stdout,
		stderr:   stderr,
		getenv:   os.Getenv,
		clock:    clock.Real{},
		terminal: isTerminal(stdout),
	}
	return e.main(ctx, args)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (e *env) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		e.usage(e.stderr)
		return 2
	}
	err := e.dispatch(ctx, args)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsagePrinted):
		return 2
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.stderr, "berth: %s\n", ue.msg)
		if ue.synopsis != "" {
			fmt.Fprintf(e.stderr, "usage: berth %s\n", ue.synopsis)
		}
		return 2
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.stderr, "berth: interrupted")
		return 130
	}
	fmt.Fprintf(e.stderr, "berth: %s\n", explain(err))
	return 1
}

func (e *env) dispatch(ctx context.Context, args []string) error {
	switch args[0] {
	case "-h", "-help", "--help":
		e.usage(e.stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q; run 'berth help' for the list", args[0])}
}

func (e *env) usage(w io.Writer) {
	fmt.Fprint(w, "berth runs jobs on clusters it manages: it queues them, reuses warm clusters,\n"+
		"scales pools with the backlog and re-runs the work of clusters it lost.\n\n"+
		"usage: berth <command> [flags] [arguments]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nCommands that talk to a server take --server (default $BERTH_SERVER, else\n"+
		DefaultServer+"), --token (default $BERTH_TOKEN) and -o table|json.\n"+
		"Run 'berth help <command>' or 'berth <command> -h' for more.\n")
}

// runGroup runs one subcommand of a group such as "jobs".
func (e *env) runGroup(ctx context.Context, group, summary string, subs []command, args []string) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "%s\n\nusage: berth %s <command> [flags] [arguments]\n\ncommands:\n", summary, group)
		tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
		for _, c := range subs {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nRun 'berth %s <command> -h' for more.\n", group)
	}
	if len(args) == 0 {
		usage(e.stderr)
		return errUsagePrinted
	}
	switch args[0] {
	case "-h", "-help", "--help":
		usage(e.stdout)
		return nil
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	return &usageError{msg: fmt.Sprintf("unknown command %q; run 'berth %s -h' for the list", group+" "+args[0], group)}
}

func runHelp(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		e.usage(e.stdout)
		return nil
	}
	// Help for a command is what its -h prints.
	return e.dispatch(ctx, append(args, "-h"))
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := e.flags("version", "version", "Print berth's version.")
	pos, err := fs.parseAll(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fs.usageErr("no arguments expected")
	}
	v := Version
	if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	fmt.Fprintf(e.stdout, "berth %s (%s %s/%s)\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

// usageError is a mistake in how berth was called: Main prints it with the
// command's synopsis and exits 2.
type usageError struct {
	msg      string
	synopsis string
}

func (e *usageError) Error() string { return e.msg }

// errUsagePrinted is a usage error whose explanation (a flag error and the
// usage) is already on stderr.
var errUsagePrinted = errors.New("usage error")

// flagSet is one command's flags.
type flagSet struct {
	*flag.FlagSet
	e        *env
	synopsis string
}

// flags makes the flags of the command named name ("jobs ls"); synopsis is
// its usage after "berth" and help what it does.
func (e *env) flags(name, synopsis, help string) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), e: e, synopsis: synopsis}
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: berth %s\n\n%s\n", synopsis, strings.TrimSpace(help))
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprint(w, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// clientFlags adds the settings every command that talks to a server
// shares.
func (e *env) clientFlags(fs *flagSet) {
	fs.StringVar(&e.server, "server", "", "`URL` of the Berth server (default $BERTH_SERVER, else "+DefaultServer+")")
	// The token's default is read after parsing, not shown as the flag's
	// default: -h would print the secret.
	fs.StringVar(&e.token, "token", "", "bearer `token` for the server (default $BERTH_TOKEN)")
	fs.StringVar(&e.output, "o", "table", "output `format`: table or json")
}

// client returns a client of the server the flags named.
func (e *env) client() *client.Client {
	return client.New(e.server, e.token, e.hc)
}

func (fs *flagSet) usageErr(format string, args ...any) error {
	return &usageError{msg: fs.Name() + ": " + fmt.Sprintf(format, args...), synopsis: fs.synopsis}
}

// parse parses the flags wherever they are among the arguments (the flag
// package alone stops at the first argument that is not a flag) and
// returns the positional arguments. Arguments after "--" are returned as
// rest, untouched, and dash says whether there was a "--". -h prints the
// usage to stdout and returns flag.ErrHelp.
func (fs *flagSet) parse(args []string) (pos, rest []string, dash bool, err error) {
	for {
		var out bytes.Buffer
		fs.SetOutput(&out)
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			_, _ = io.Copy(fs.e.stdout, &out)
			return nil, nil, false, err
		case err != nil:
			_, _ = io.Copy(fs.e.stderr, &out)
			return nil, nil, false, errUsagePrinted
		}
		left := fs.Args()
		if used := len(args) - len(left); used > 0 && args[used-1] == "--" {
			if err := fs.finish(); err != nil {
				return nil, nil, false, err
			}
			return pos, left, true, nil
		}
		if len(left) == 0 {
			return pos, nil, false, fs.finish()
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

// parseAll is parse for commands without a "--" form: arguments after
// "--" are positional too.
func (fs *flagSet) parseAll(args []string) ([]string, error) {
	pos, rest, _, err := fs.parse(args)
	return append(pos, rest...), err
}

// finish completes and checks the shared settings once the flags are
// parsed.
func (fs *flagSet) finish() error {
	if fs.Lookup("server") != nil && fs.e.server == "" {
		fs.e.server = cmp.Or(fs.e.getenv("BERTH_SERVER"), DefaultServer)
	}
	if fs.Lookup("token") != nil && fs.e.token == "" {
		fs.e.token = fs.e.getenv("BERTH_TOKEN")
	}
	if fs.Lookup("o") == nil {
		return nil
	}
	switch fs.e.output {
	case "table", "json":
		return nil
	}
	return fs.usageErr("-o %q: want table or json", fs.e.output)
}

// explain words an error for the person at the terminal.
func explain(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		if ce.Code == "unauthorized" {
			return ce.Error() + " (set --token or BERTH_TOKEN)"
		}
		return ce.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return err.Error() + "\n(is the server running? point --server or BERTH_SERVER at it)"
	}
	return err.Error()
}
