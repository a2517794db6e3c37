// Package cli is etcdkit's command tree: one file per command group. A
// command turns flags into an options struct, calls a package below, and
// formats what it returns. Nothing below this package prints or exits.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// Exit codes, documented in docs/exit-codes.md.
const (
	ExitOK = 0
	// ExitError is any failure without a more specific code.
	ExitError = 1
	// ExitUsage is a bad flag, argument or input file.
	ExitUsage = 2
	// ExitUnhealthy is a cluster or endpoint found unhealthy.
	ExitUnhealthy = 3
)

// App is the process's view of the world: its streams and environment.
// Tests build one with buffers and run commands in process.
type App struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
	// Executable is the etcdkit binary `up` starts members with.
	Executable func() (string, error)
}

// NewApp is an App on the real process.
func NewApp() *App {
	return &App{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, Executable: os.Executable}
}

// usageError marks an error as the user's input, for ExitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef makes a usage error.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// Main runs the command line and returns the process exit code.
func (a *App) Main(args []string) int {
	root := a.Root()
	root.SetArgs(args)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(a.Err, "Error: %s\n", indent(err.Error()))
	return exitCode(err)
}

// indent keeps a joined multi-error readable under "Error: ".
func indent(msg string) string {
	return strings.ReplaceAll(msg, "\n", "\n  ")
}

func exitCode(err error) int {
	var ue usageError
	var cfe *etcdconf.FieldError
	var sfe *spec.FieldError
	switch {
	case errors.Is(err, ops.ErrUnhealthy):
		return ExitUnhealthy
	case errors.As(err, &ue), errors.As(err, &cfe), errors.As(err, &sfe):
		return ExitUsage
	}
	return ExitError
}

// Root builds the command tree.
func (a *App) Root() *cobra.Command {
	root := &cobra.Command{
		Use:   "etcdkit",
		Short: "A secure, highly available etcd cluster and every day-2 operation on it",
		Long: `etcdkit runs etcd members (the real etcd server, linked in), creates and checks
their certificates, renders their configs and performs day-2 operations safely:
health, status, membership changes, backups and restores.

Start with:  etcdkit up          a secure 3-member cluster on this machine`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	root.SetIn(a.In)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nSee '%s --help'.", err, c.CommandPath())}
	})
	root.AddCommand(
		a.versionCmd(),
		a.upCmd(),
		a.memberCmd(),
		a.healthCmd(),
		a.statusCmd(),
		a.snapshotCmd(),
		a.clusterCmd(),
		a.configCmd(),
		a.pkiCmd(),
		a.kubeadmCmd(),
		a.defragCmd(),
		a.alarmCmd(),
		a.applyCmd(),
		a.initCmd(),
		a.tokenCmd(),
		a.joinCmd(),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s; got %d argument(s)", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// noArgs rejects stray arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments; got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
