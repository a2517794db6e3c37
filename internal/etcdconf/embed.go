package etcdconf

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"go.etcd.io/etcd/server/v3/embed"
)

// Embed builds the embed.Config etcd would build from the same file. Call
// Validate first: Embed assumes URLs parse.
func (c *Config) Embed() (*embed.Config, error) {
	cfg := embed.NewConfig()
	explicit := map[string]bool{}

	if len(c.Extra) > 0 {
		passthrough := map[string]any{}
		for k, v := range c.Extra {
			explicit[k] = true
			switch k {
			case "cors":
				cfg.CORS = setOf(fmt.Sprint(v))
			case "host-whitelist":
				cfg.HostWhitelist = setOf(fmt.Sprint(v))
			case "feature-gates":
				if err := cfg.ServerFeatureGate.(featuregate.MutableFeatureGate).Set(fmt.Sprint(v)); err != nil {
					return nil, fmt.Errorf("feature-gates: %w", err)
				}
			default:
				nv, err := normalize(k, v)
				if err != nil {
					return nil, err
				}
				passthrough[k] = nv
			}
		}
		b, err := json.Marshal(passthrough)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, cfg); err != nil {
			return nil, fmt.Errorf("etcd setting: %s", typeMessage(err))
		}
	}

	set := func(key string, present bool, apply func()) {
		if present {
			explicit[key] = true
			apply()
		}
	}
	set("name", c.Name != "", func() { cfg.Name = c.Name })
	set("data-dir", c.DataDir != "", func() { cfg.Dir = c.DataDir })
	set("wal-dir", c.WalDir != "", func() { cfg.WalDir = c.WalDir })
	set("snapshot-count", c.SnapshotCount != 0, func() { cfg.SnapshotCount = c.SnapshotCount })
	set("heartbeat-interval", c.HeartbeatInterval != 0, func() { cfg.TickMs = c.HeartbeatInterval })
	set("election-timeout", c.ElectionTimeout != 0, func() { cfg.ElectionMs = c.ElectionTimeout })
	set("quota-backend-bytes", c.QuotaBackendBytes != 0, func() { cfg.QuotaBackendBytes = c.QuotaBackendBytes })
	set("max-learners", c.MaxLearners != 0, func() { cfg.MaxLearners = c.MaxLearners })
	set("initial-cluster", c.InitialCluster != "", func() { cfg.InitialCluster = c.InitialCluster })
	set("initial-cluster-token", c.InitialClusterToken != "", func() { cfg.InitialClusterToken = c.InitialClusterToken })
	set("initial-cluster-state", c.InitialClusterState != "", func() { cfg.ClusterState = c.InitialClusterState })
	set("strict-reconfig-check", c.StrictReconfigCheck != nil, func() { cfg.StrictReconfigCheck = *c.StrictReconfigCheck })
	set("auto-compaction-mode", c.AutoCompactionMode != "", func() { cfg.AutoCompactionMode = c.AutoCompactionMode })
	set("auto-compaction-retention", c.AutoCompactionRetention != "", func() { cfg.AutoCompactionRetention = c.AutoCompactionRetention })
	set("logger", c.Logger != "", func() { cfg.Logger = c.Logger })
	set("log-level", c.LogLevel != "", func() { cfg.LogLevel = c.LogLevel })
	set("log-format", c.LogFormat != "", func() { cfg.LogFormat = c.LogFormat })
	set("log-outputs", len(c.LogOutputs) > 0, func() { cfg.LogOutputs = c.LogOutputs })
	set("force-new-cluster", c.ForceNewCluster, func() { cfg.ForceNewCluster = true })

	var err error
	parse := func(key, value string, apply func([]url.URL)) {
		if value == "" || err != nil {
			return
		}
		explicit[key] = true
		var us []url.URL
		us, err = URLs(value)
		if err != nil {
			err = fmt.Errorf("%s: %w", key, err)
			return
		}
		apply(us)
	}
	parse("listen-peer-urls", c.ListenPeerURLs, func(u []url.URL) { cfg.ListenPeerUrls = u })
	parse("listen-client-urls", c.ListenClientURLs, func(u []url.URL) { cfg.ListenClientUrls = u })
	parse("listen-client-http-urls", c.ListenClientHTTPURLs, func(u []url.URL) { cfg.ListenClientHttpUrls = u })
	parse("listen-metrics-urls", c.ListenMetricsURLs, func(u []url.URL) { cfg.ListenMetricsUrls = u })
	parse("initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, func(u []url.URL) { cfg.AdvertisePeerUrls = u })
	parse("advertise-client-urls", c.AdvertiseClientURLs, func(u []url.URL) { cfg.AdvertiseClientUrls = u })
	if err != nil {
		return nil, err
	}

	copyTLS(&cfg.ClientTLSInfo, c.ClientTransportSecurity)
	copyTLS(&cfg.PeerTLSInfo, c.PeerTransportSecurity)
	cfg.ClientAutoTLS = c.ClientTransportSecurity.AutoTLS
	cfg.PeerAutoTLS = c.PeerTransportSecurity.AutoTLS
	for _, k := range []string{"client-transport-security", "peer-transport-security"} {
		explicit[k] = true
	}
	for k := range explicit {
		cfg.FlagsExplicitlySet[k] = true
	}
	return cfg, nil
}

func copyTLS(dst *transport.TLSInfo, s Security) {
	dst.CertFile = s.CertFile
	dst.KeyFile = s.KeyFile
	dst.ClientCertFile = s.ClientCertFile
	dst.ClientKeyFile = s.ClientKeyFile
	dst.ClientCertAuth = s.ClientCertAuth
	dst.TrustedCAFile = s.TrustedCAFile
	dst.AllowedCNs = s.AllowedCN
	dst.AllowedHostnames = s.AllowedHostname
	dst.SkipClientSANVerify = s.SkipClientSANVerification
}

func setOf(list string) map[string]struct{} {
	out := map[string]struct{}{}
	for _, s := range SplitList(list) {
		out[s] = struct{}{}
	}
	return out
}

// normalize turns human durations ("10m") into the integer nanoseconds
// etcd's file format wants for time.Duration settings.
func normalize(key string, v any) (any, error) {
	if !isDurationKey(key) {
		return v, nil
	}
	s, ok := v.(string)
	if !ok {
		return v, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%s: invalid duration %q (want e.g. 10m or 500ms)", key, s)
	}
	return int64(d), nil
}
