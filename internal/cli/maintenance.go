package cli

import (
	"fmt"
	"os"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
)

func (a *App) defragCmd() *cobra.Command {
	var (
		cf      clientFlags
		output  string
		cluster bool
		o       ops.DefragOptions
	)
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Defragment members one at a time, followers first, the leader last",
		Long: `Gives the space that compaction freed inside each member's database back to
the file system. A member being defragmented blocks its reads and writes until
it ends, so etcdkit defragments one member at a time, followers first and the
leader last, and waits for each to serve again before the next.

Before each member it refuses when the cluster is not healthy (a NOSPACE alarm
is allowed: defragmenting is how it is cleared) and when that member is the
only voting member able to serve (a one-member cluster: pass
--allow-unavailable). The first failure stops the run.

Compact first (etcdctl compact REVISION), or there is little to give back.
After a NOSPACE alarm: compact, defrag, then 'etcdkit alarm disarm'.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Timeout < 0 {
				return usagef("invalid value %v for flag --timeout; it must be positive", o.Timeout)
			}
			t, err := a.clientTarget(cmd, &cf, output)
			if err != nil {
				return err
			}
			if cluster {
				if t.Endpoints, err = ops.ClusterEndpoints(cmd.Context(), t); err != nil {
					return err
				}
			}
			if a.errIsTerminal() {
				o.Progress = func(r ops.DefragResult, done bool) {
					if !done {
						fmt.Fprintf(a.Err, "defragmenting %s (%s) ...\n", dash(r.Name), r.Endpoint)
					}
				}
			}
			rs, err := ops.Defrag(cmd.Context(), t, o)
			if rs == nil {
				rs = []ops.DefragResult{}
			}
			if len(rs) > 0 || err == nil {
				if perr := print(a.Out, output, rs, func() *table {
					tb := &table{header: []string{"ENDPOINT", "NAME", "LEADER", "BEFORE", "AFTER", "IN USE", "TOOK", "RESULT"}}
					for _, r := range rs {
						result := "done"
						if r.Error != "" {
							result = r.Error
						}
						tb.add(r.Endpoint, dash(r.Name), yesNo(r.Leader), humanBytes(r.SizeBefore), humanBytes(r.SizeAfter),
							humanBytes(r.InUseAfter), r.Took.String(), result)
					}
					return tb
				}); perr != nil && err == nil {
					err = perr
				}
			}
			if err != nil {
				return err
			}
			if output == formatTable {
				if as, aerr := ops.Alarms(cmd.Context(), t); aerr == nil && len(as) > 0 {
					fmt.Fprintf(a.Err, "alarm(s) still raised; once every member is below its quota run: etcdkit alarm disarm\n")
				}
			}
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	fs := cmd.Flags()
	fs.BoolVar(&cluster, "cluster", false, "defragment every member from the member list, not only --endpoints")
	fs.DurationVar(&o.Timeout, "timeout", ops.DefaultDefragTimeout, "how long one member's defragmentation may take")
	fs.BoolVar(&o.AllowUnavailable, "allow-unavailable", false, "defragment a member even when no other can serve meanwhile (one-member cluster)")
	return cmd
}

func (a *App) alarmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alarm",
		Short: "List and clear alarms (NOSPACE, CORRUPT)",
		Long: `etcd raises NOSPACE when a member's database reaches its quota
(quota-backend-bytes) and then refuses every write in the whole cluster, and
CORRUPT when a member's data differs from the others'. See docs/maintenance.md.`,
	}
	cmd.AddCommand(a.alarmListCmd(), a.alarmDisarmCmd())
	return cmd
}

func (a *App) alarmListCmd() *cobra.Command {
	var (
		cf     clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List raised alarms and the members that raised them",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := a.clientTarget(cmd, &cf, output)
			if err != nil {
				return err
			}
			as, err := ops.Alarms(cmd.Context(), t)
			if err != nil {
				return err
			}
			return print(a.Out, output, as, func() *table { return alarmTable(as) })
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	return cmd
}

func (a *App) alarmDisarmCmd() *cobra.Command {
	var (
		cf     clientFlags
		output string
		o      ops.DisarmOptions
	)
	cmd := &cobra.Command{
		Use:   "disarm",
		Short: "Clear raised alarms once their cause is gone",
		Long: `Clears NOSPACE only when every member's database is below its quota again
(compact and 'etcdkit defrag' first), because otherwise the next write raises
it again. Refuses to clear CORRUPT, which means a member must be replaced,
unless --force.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := a.clientTarget(cmd, &cf, output)
			if err != nil {
				return err
			}
			cleared, err := ops.Disarm(cmd.Context(), t, o)
			if err != nil {
				return err
			}
			if cleared == nil {
				cleared = []ops.Alarm{}
			}
			if output == formatTable && len(cleared) == 0 {
				fmt.Fprintln(a.Out, "no alarm is raised")
				return nil
			}
			return print(a.Out, output, cleared, func() *table { return alarmTable(cleared) })
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&o.Force, "force", false, "clear CORRUPT alarms too, and NOSPACE without checking database sizes")
	return cmd
}

func alarmTable(as []ops.Alarm) *table {
	tb := &table{header: []string{"MEMBER", "ID", "ALARM"}}
	for _, al := range as {
		tb.add(dash(al.Member), al.MemberID, al.Alarm)
	}
	return tb
}

// clientTarget checks -o and resolves the connection, before a client
// command touches the cluster.
func (a *App) clientTarget(cmd *cobra.Command, cf *clientFlags, output string) (*connect.Target, error) {
	if err := checkFormat(output); err != nil {
		return nil, err
	}
	return a.target(cmd, cf)
}

// errIsTerminal says whether progress lines would reach a person.
func (a *App) errIsTerminal() bool {
	f, ok := a.Err.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
