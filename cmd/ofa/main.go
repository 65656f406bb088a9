//go:generate go test -run TestReference -update

// Command ofa trains a Transformer supernet once and derives small models from it for many
// deployment budgets. Run `ofa --help` for the commands; README.md has examples.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ofa-go/ofa/cluster"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
	"github.com/ofa-go/ofa/train"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// exit codes
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// app carries what every command shares: where output goes and whether the final line is
// JSON.
type app struct {
	stdout, stderr io.Writer
	json           bool
	configFile     string
	// world is the MPI job this process is a rank of (the one-rank world outside one):
	// rank 0 prints and writes, the others compute and print only their errors.
	world cluster.World
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code. Only main exits.
func run(args []string, stdout, stderr io.Writer) int {
	world, err := cluster.Detect()
	if err != nil {
		fmt.Fprintln(stderr, "ofa:", err)
		return exitError
	}
	a := &app{stdout: stdout, stderr: stderr, world: world}
	if world.Rank() != 0 {
		a.stdout = io.Discard
	}
	root := a.rootCmd()
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch cmd.Name() {
		case "train", "finetune", "run":
		default:
			if world.Size() > 1 {
				return fmt.Errorf("%w: ofa %s runs in one process; under mpirun only train, finetune and run use the ranks", errUsage, cmd.Name())
			}
		}
		return nil
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = root.ExecuteContext(ctx)
	// after the error is printed: a rank that failed alone takes the others down
	// (MPI_Abort) rather than leave them waiting; an interruption reaches every rank at
	// the same step, and they end normally
	defer func() { cluster.Finish(world, err != nil && !errors.Is(err, train.ErrInterrupted)) }()
	if err == nil {
		return exitOK
	}
	if world.Size() > 1 {
		fmt.Fprintf(stderr, "ofa: rank %d of %d: %v\n", world.Rank(), world.Size(), err)
	} else {
		fmt.Fprintln(stderr, "ofa:", err)
	}
	if a.json {
		a.emit(map[string]any{"error": err.Error()})
	}
	switch {
	case errors.Is(err, train.ErrInterrupted):
		return exitInterrupted
	case errors.Is(err, errUsage):
		return exitUsage
	}
	return exitError
}

// rootCmd is the command tree: every command with its flags.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ofa",
		Short:         "Train a Transformer supernet once, then extract small models for many budgets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print exactly one JSON object as the last line of standard output")
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "YAML configuration file (every key: docs/CONFIG.md)")
	root.AddCommand(a.trainCmd(), a.evalCmd(), a.inspectCmd(), a.extractCmd(), a.latencyCmd(), a.expandCmd(), a.finetuneCmd(), a.runCmd(), a.benchCmd(), a.exportCmd(), a.predictCmd())
	return root
}

var errUsage = errors.New("usage")

// emit prints v as the final JSON line of standard output (only with --json). Text is
// written as is ("<=", not "\u003c="): the line is data, not HTML.
func (a *app) emit(v any) {
	if !a.json {
		return
	}
	b, err := marshalJSON(v)
	if err != nil {
		b, _ = marshalJSON(map[string]string{"error": err.Error()})
	}
	fmt.Fprintln(a.stdout, string(b))
}

// marshalJSON is json.Marshal without HTML escaping, on one line.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// say prints a human-readable line: to standard output normally, to standard error with
// --json (so that the JSON object stays the last line of standard output).
func (a *app) say(format string, args ...any) {
	if !cluster.IsLeader(a.world) {
		return
	}
	w := a.stdout
	if a.json {
		w = a.stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// claim takes dir as this command's output directory (pipeline.Claim: an exclusive lock,
// stale temporary files removed), runs checks of what dir holds, and returns the function
// that releases it. Under MPI rank 0 alone claims and checks, and every rank learns
// whether that worked before any of them reads or writes.
func (a *app) claim(dir string, checks ...func() error) (func() error, error) {
	release := func() error { return nil }
	var err error
	if cluster.IsLeader(a.world) {
		var removed []string
		if release, removed, err = pipeline.Claim(dir); err == nil {
			for _, r := range removed {
				a.say("removed %s, left by an earlier run that was killed while writing", r)
			}
			for _, c := range checks {
				if err = c(); err != nil {
					break
				}
			}
			if err != nil {
				_ = release()
			}
		}
	}
	if err := cluster.Agree(a.world, err); err != nil {
		return nil, err
	}
	return release, nil
}

// output is where library steps show their progress and lines: nowhere on ranks other
// than 0.
func (a *app) output() pipeline.Output {
	if !cluster.IsLeader(a.world) {
		return pipeline.Output{}
	}
	return pipeline.Output{Progress: a.stderr, Log: a.say}
}

// refuseExistingModel is a usage error when out already holds a model and force is not set,
// so that a command never silently replaces a result.
func refuseExistingModel(out string, force bool) error {
	path := filepath.Join(out, pipeline.FileModel)
	if _, err := os.Stat(path); err != nil || force {
		return nil
	}
	if err := modelfile.CheckComplete(path); err != nil {
		return fmt.Errorf("%w: %s holds an incomplete model (its writer was stopped): use --force to replace it", errUsage, out)
	}
	return fmt.Errorf("%w: %s already holds a model: use --force to replace it", errUsage, out)
}

// refuseFinishedModel refuses to continue a fine-tuning in out whose model is finished
// (its directory is no longer marked incomplete).
func refuseFinishedModel(out string) error {
	path := filepath.Join(out, pipeline.FileModel)
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	if modelfile.CheckComplete(path) == nil {
		return fmt.Errorf("%w: %s holds a finished model: nothing to resume (--force starts over)", errUsage, out)
	}
	return nil
}

// progress returns a callback that shows done/total as a bar on a terminal and, when
// standard error is a file or pipe (logs, CI), as a plain line at every quarter.
func (a *app) progress(title string) func(done, total int) {
	if f, ok := a.stderr.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		last := -1
		return func(done, total int) {
			if q := 4 * done / max(1, total); q > last {
				last = q
				fmt.Fprintf(a.stderr, "%s %d/%d\n", title, done, total)
			}
		}
	}
	bar := progressbar.NewOptions(1, progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetDescription(title),
		progressbar.OptionShowCount(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.stderr) }))
	return func(done, total int) {
		bar.ChangeMax(total)
		_ = bar.Set(done)
	}
}

// withCommand is v's JSON object with a "command" key, like every command's final
// line: v must marshal to an object.
func withCommand(command string, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return v
	}
	fields["command"], _ = json.Marshal(command)
	return fields
}
