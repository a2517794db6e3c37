package cli

import (
	"github.com/spf13/cobra"
)

func (a *App) memberCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "Run a member, and list or change the members of a cluster",
	}
	cmd.AddCommand(a.memberRunCmd())
	return cmd
}
