package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/version"
)

func (a *App) versionCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of etcdkit, the embedded etcd and Go",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(output); err != nil {
				return err
			}
			v := version.Get()
			if output != formatTable {
				return print(a.Out, output, v, nil)
			}
			fmt.Fprintf(a.Out, "etcdkit version: %s\n", v.Etcdkit)
			fmt.Fprintf(a.Out, "etcd version: %s (API %s)\n", v.Etcd, v.EtcdAPI)
			fmt.Fprintf(a.Out, "Go version: %s\n", v.Go)
			if v.Revision != "" {
				fmt.Fprintf(a.Out, "Git revision: %s\n", v.Revision)
			}
			return nil
		},
	}
	outputFlag(cmd, &output)
	return cmd
}
