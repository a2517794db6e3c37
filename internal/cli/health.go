package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/ops"
)

func (a *App) healthCmd() *cobra.Command {
	var (
		cf      clientFlags
		output  string
		cluster bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check the health of every endpoint (a linearizable read, as `etcdctl endpoint health`)",
		Long: `Checks each endpoint: it must answer a linearizable read (which needs a leader
and a quorum) and no alarm may be raised. A learner is judged by its status, as
it cannot serve linearizable reads. Exit code 0 when all are healthy, 3 when
any is not, with which member failed and why.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			t, err := a.target(cmd, &cf)
			if err != nil {
				return err
			}
			if cluster {
				if t.Endpoints, err = ops.ClusterEndpoints(cmd.Context(), t); err != nil {
					return err
				}
			}
			hs := ops.Health(cmd.Context(), t)
			if err := print(a.Out, output, hs, func() *table {
				tb := &table{header: []string{"ENDPOINT", "NAME", "HEALTHY", "TOOK", "ERROR"}}
				for _, h := range hs {
					name := h.Name
					if h.Learner {
						name += " (learner)"
					}
					tb.add(h.Endpoint, name, yesNo(h.Healthy), h.Took.Round(10*time.Microsecond).String(), h.Error)
				}
				return tb
			}); err != nil {
				return err
			}
			if err := ops.Unhealthy(hs); err != nil {
				return fmt.Errorf("cluster is not healthy:\n%w", err)
			}
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&cluster, "cluster", false, "check every member's client URLs from the member list, not only --endpoints")
	return cmd
}

func (a *App) statusCmd() *cobra.Command {
	var (
		cf      clientFlags
		output  string
		cluster bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each endpoint's status: member, version, db size, leader, raft term and index, alarms, certificate expiry",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			t, err := a.target(cmd, &cf)
			if err != nil {
				return err
			}
			if cluster {
				if t.Endpoints, err = ops.ClusterEndpoints(cmd.Context(), t); err != nil {
					return err
				}
			}
			ss := ops.Status(cmd.Context(), t)
			if err := print(a.Out, output, ss, func() *table {
				tb := &table{header: []string{"ENDPOINT", "NAME", "ID", "VERSION", "DB SIZE", "LEADER", "LEARNER", "TERM", "INDEX", "APPLIED", "CERT EXPIRES", "ERRORS"}}
				for _, s := range ss {
					if s.Error != "" {
						tb.add(s.Endpoint, "", "", "", "", "", "", "", "", "", "", s.Error)
						continue
					}
					expires := ""
					if !s.CertNotAfter.IsZero() {
						expires = fmt.Sprintf("%s (%dd)", s.CertNotAfter.Format("2006-01-02"), int(time.Until(s.CertNotAfter).Hours()/24))
					}
					errs := append(append([]string{}, s.Errors...), s.Alarms...)
					tb.add(s.Endpoint, s.Name, s.ID, s.Version, humanBytes(s.DBSize), yesNo(s.IsLeader), yesNo(s.IsLearner),
						fmt.Sprint(s.RaftTerm), fmt.Sprint(s.RaftIndex), fmt.Sprint(s.RaftAppliedIndex), expires, fmt.Sprint(joinOrEmpty(errs)))
				}
				return tb
			}); err != nil {
				return err
			}
			var failed []string
			for _, s := range ss {
				if s.Error != "" {
					failed = append(failed, fmt.Sprintf("%s: %s", s.Endpoint, s.Error))
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%w: %d of %d endpoints did not answer:\n%s", ops.ErrUnhealthy, len(failed), len(ss), joinLines(failed))
			}
			return nil
		},
	}
	addClientFlags(cmd, &cf)
	outputFlag(cmd, &output)
	cmd.Flags().BoolVar(&cluster, "cluster", false, "show every member's client URLs from the member list, not only --endpoints")
	return cmd
}
