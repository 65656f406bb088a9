// Command ofa trains a Transformer supernet once and derives small models from it for many
// deployment budgets. Run `ofa --help` for the commands; README.md has examples.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ofa-go/ofa/train"
	"github.com/spf13/cobra"
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
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code. Only main exits.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "ofa",
		Short:         "Train a Transformer supernet once, then extract small models for many budgets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVar(&a.json, "json", false, "print exactly one JSON object as the last line of standard output")
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "YAML configuration file (see README: Configuration)")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.AddCommand(a.trainCmd(), a.evalCmd(), a.inspectCmd(), a.extractCmd(), a.latencyCmd(), a.expandCmd(), a.finetuneCmd(), a.runCmd(), a.benchCmd())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "ofa:", err)
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

var errUsage = errors.New("usage")

// emit prints v as the final JSON line of standard output (only with --json).
func (a *app) emit(v any) {
	if !a.json {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"error": err.Error()})
	}
	fmt.Fprintln(a.stdout, string(b))
}

// say prints a human-readable line: to standard output normally, to standard error with
// --json (so that the JSON object stays the last line of standard output).
func (a *app) say(format string, args ...any) {
	w := a.stdout
	if a.json {
		w = a.stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}
