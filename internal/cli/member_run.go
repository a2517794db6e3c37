package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
	"github.com/etcdkit/etcdkit/internal/join"
	"github.com/etcdkit/etcdkit/internal/member"
	"github.com/etcdkit/etcdkit/internal/snapshot"
)

func (a *App) memberRunCmd() *cobra.Command {
	var (
		configPath   string
		insecureHTTP bool
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run one etcd member (embedded etcd) from an etcd config file or ETCD_* env file; systemd-ready",
		Long: `Runs one etcd member in this process from etcd's own config-file format (the
keys 'etcd --config-file' reads), or from an environment file of ETCD_*
variables such as /etc/etcd/etcd.conf (detected by content; each variable is
read as etcd reads it, ETCD_CERT_FILE as client-transport-security.cert-file).
The file is validated first, and every problem is reported with its key or
variable and line; unknown and removed variables are errors with a "did you
mean"; certificate files must exist and private keys must not be readable by
others.

The config's etcdkit: section turns on in-member services: scheduled
snapshots (backup:) and, on a member holding the CA key, the join endpoint
(join: {listen: https://IP:2382}) that 'etcdkit join' uses.

With systemd (Type=notify) it sends READY=1 once the member has joined its
cluster and serves clients, and STOPPING=1 on shutdown. SIGTERM or SIGINT
stops it cleanly (exit 0).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return usagef("--config is required: the member's etcd config file")
			}
			return a.runMember(cmd.Context(), configPath, insecureHTTP, nil)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "etcd config file: YAML (as etcd --config-file) or ETCD_* environment file")
	cmd.Flags().BoolVar(&insecureHTTP, "insecure-http", false, "allow plain-HTTP URLs on loopback addresses (never on others)")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml", "conf")
	return cmd
}

// runMember runs the member of a config file in this process, with the
// in-member services the config asks for (scheduled backups, the join
// endpoint), until ctx ends. ready, when set, runs once the member serves.
func (a *App) runMember(ctx context.Context, configPath string, insecureHTTP bool, ready func(*embed.Etcd)) error {
	src, err := os.ReadFile(configPath)
	if err != nil {
		return usagef("read config: %w", err)
	}
	cfg, err := etcdconf.Parse(configPath, src)
	if err != nil {
		return err
	}
	services, err := snapshot.Services(cfg, configPath, src)
	if err != nil {
		return err
	}
	joinServices, err := join.Services(cfg, configPath)
	if err != nil {
		return err
	}
	return member.Run(ctx, member.Options{
		Config:            cfg,
		ConfigPath:        configPath,
		Source:            src,
		AllowInsecureHTTP: insecureHTTP,
		Services:          append(services, joinServices...),
		Ready:             ready,
		Warn:              func(msg string) { fmt.Fprintf(a.Err, "warning: %s\n", msg) },
	})
}
