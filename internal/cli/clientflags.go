package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/local"
)

// clientFlags are the connection flags of every command that talks to a
// cluster, spelled as etcdctl spells them, plus the legacy v2 spellings.
type clientFlags struct {
	endpoints          []string
	cacert, cert, key  string
	insecureSkipVerify bool
	dialTimeout        time.Duration
	commandTimeout     time.Duration
	dir                string
	verbose            bool
}

func addClientFlags(cmd *cobra.Command, f *clientFlags) {
	fs := cmd.Flags()
	fs.StringSliceVar(&f.endpoints, "endpoints", nil, "gRPC endpoints (env ETCDCTL_ENDPOINTS)")
	fs.StringVar(&f.cacert, "cacert", "", "verify certificates of TLS-enabled secure servers using this CA bundle (env ETCDCTL_CACERT)")
	fs.StringVar(&f.cert, "cert", "", "identify secure client using this TLS certificate file (env ETCDCTL_CERT)")
	fs.StringVar(&f.key, "key", "", "identify secure client using this TLS key file (env ETCDCTL_KEY)")
	// etcdctl v2's names, still in many runbooks.
	fs.StringVar(&f.cacert, "ca-file", "", "same as --cacert")
	fs.StringVar(&f.cert, "cert-file", "", "same as --cert")
	fs.StringVar(&f.key, "key-file", "", "same as --key")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-tls-verify", false, "skip server certificate verification (unsafe)")
	fs.DurationVar(&f.dialTimeout, "dial-timeout", 0, "dial timeout for client connections (default 2s)")
	fs.DurationVar(&f.commandTimeout, "command-timeout", 0, "timeout for each request (default 5s)")
	fs.StringVar(&f.dir, "dir", "", "the directory of a cluster made by `etcdkit up` (default ./"+local.DefaultDir+" when it exists)")
	fs.BoolVarP(&f.verbose, "verbose", "v", false, "say where the endpoints and certificates came from")
	for _, legacy := range []string{"ca-file", "cert-file", "key-file"} {
		_ = fs.MarkHidden(legacy)
	}
	_ = cmd.MarkFlagFilename("cacert")
	_ = cmd.MarkFlagFilename("cert")
	_ = cmd.MarkFlagFilename("key")
	_ = cmd.MarkFlagDirname("dir")
}

// target resolves the connection: flags, then ETCDCTL_* variables, then
// discovery sources in their documented order.
func (a *App) target(cmd *cobra.Command, f *clientFlags) (*connect.Target, error) {
	flags := connect.Settings{
		Endpoints: f.endpoints, CACert: f.cacert, Cert: f.cert, Key: f.key,
		InsecureSkipVerify: f.insecureSkipVerify, DialTimeout: f.dialTimeout, CommandTimeout: f.commandTimeout,
	}
	var sources []connect.Source
	if f.dir != "" {
		sources = append(sources, local.Source(f.dir, true))
	} else {
		sources = append(sources, local.Source(local.DefaultDir, false))
	}
	t, err := connect.Resolve(flags, connect.Env(a.Getenv), sources...)
	if err != nil {
		return nil, usageError{err}
	}
	if f.verbose {
		fmt.Fprintf(a.Err, "using %v from %v\n", t.Endpoints, t.Source)
	}
	return t, nil
}
