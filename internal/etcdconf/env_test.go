package etcdconf

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/etcd/server/v3/embed"
)

func TestParseEnvFileSyntax(t *testing.T) {
	src := "# comment\n; also a comment\n\n" +
		"A=plain value  \n" +
		"B=\"double \\\"quoted\\\" \\$HOME \\n\"\n" +
		"C='single $HOME \\n'\n" +
		"D=one\\\n  two\n" +
		"E=\"multi\nline\"\n" +
		"  F = spaced\n" +
		"G=x # not a comment\n" +
		"H=\n" +
		"export I=1\n" +
		"not an assignment\n" +
		"1BAD=x\n" +
		"J=\"unterminated\n"
	vars, errs := ParseEnvFile([]byte(src))
	var got []string
	for _, v := range vars {
		got = append(got, fmt.Sprintf("%d %s=%q", v.Line, v.Name, v.Value))
	}
	want := []string{
		`4 A="plain value"`,
		`5 B="double \"quoted\" $HOME \\n"`,
		`6 C="single $HOME \\n"`,
		`7 D="one  two"`,
		`9 E="multi\nline"`,
		`11 F="spaced"`,
		`12 G="x # not a comment"`,
		`13 H=""`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var lines []string
	for _, e := range errs {
		lines = append(lines, e.Error())
	}
	joined := strings.Join(lines, "\n")
	for _, w := range []string{"line 14: \"export I\": systemd's EnvironmentFile= does not read shell's export", "line 15: \"not an assignment\" is not an assignment", "line 16: \"1BAD\" is not a valid variable name", "line 17: unterminated double quote"} {
		if !strings.Contains(joined, w) {
			t.Fatalf("errors lack %q:\n%s", w, joined)
		}
	}
}

// TestEveryEtcdFlagHasAKey: each flag etcd reads maps to a config-file key
// whose type is known, or is one etcdkit names a reason for. A newer etcd
// with a new flag fails here rather than silently dropping the setting.
func TestEveryEtcdFlagHasAKey(t *testing.T) {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	embed.NewConfig().AddFlags(fs)
	fs.VisitAll(func(f *flag.Flag) {
		key, reason := FlagKey(f.Name)
		switch {
		case reason != "":
			if _, listed := flagOnly[f.Name]; !listed {
				t.Errorf("flag --%s has no config-file key and no reason in flagOnly: %s", f.Name, reason)
			}
		case keyType(key) == nil:
			t.Errorf("flag --%s maps to %q, which etcd's config file does not have", f.Name, key)
		case KeyFlag(key) != f.Name:
			t.Errorf("key %q maps back to --%s, not --%s", key, KeyFlag(key), f.Name)
		}
	})
}

func TestEnvMapping(t *testing.T) {
	for env, want := range map[string]string{
		"ETCD_NAME":                           "name",
		"ETCD_CERT_FILE":                      "client-transport-security.cert-file",
		"ETCD_AUTO_TLS":                       "client-transport-security.auto-tls",
		"ETCD_CLIENT_CERT_AUTH":               "client-transport-security.client-cert-auth",
		"ETCD_PEER_AUTO_TLS":                  "peer-transport-security.auto-tls",
		"ETCD_PEER_CLIENT_CERT_AUTH":          "peer-transport-security.client-cert-auth",
		"ETCD_PEER_TRUSTED_CA_FILE":           "peer-transport-security.trusted-ca-file",
		"ETCD_PEER_CERT_ALLOWED_CN":           "peer-transport-security.allowed-cn",
		"ETCD_INITIAL_CLUSTER_STATE":          "initial-cluster-state",
		"ETCD_SOCKET_REUSE_PORT":              "socket-options.reuse-port",
		"ETCD_DISCOVERY_ENDPOINTS":            "discovery-config.client.endpoints",
		"ETCD_WATCH_PROGRESS_NOTIFY_INTERVAL": "watch-progress-notify-interval",
		"ETCDKIT_BACKUP_SCHEDULE":             "etcdkit.backup.schedule",
		"ETCDKIT_JOIN_LISTEN":                 "etcdkit.join.listen",
		"ETCDKIT_JOIN_CA_DIR":                 "etcdkit.join.ca-dir",
	} {
		key, rule, msg := EnvKey(env)
		if key != want || rule != "" {
			t.Errorf("%s: key %q rule %q (%s), want %q", env, key, rule, msg, want)
		}
	}
	for env, wantRule := range map[string]string{
		"ETCD_LISTEN_PEER_URL":   RuleUnknownKey,
		"ETCD_ENABLE_V2":         RuleRemoved,
		"ETCD_PROXY":             RuleRemoved,
		"ETCD_CLIENT_CRL_FILE":   RuleUnsupported,
		"ETCD_CONFIG_FILE":       RuleUnsupported,
		"ETCDKIT_BACKUP_SCHEDUL": RuleUnknownKey,
	} {
		if _, rule, _ := EnvKey(env); rule != wantRule {
			t.Errorf("%s: rule %q, want %q", env, rule, wantRule)
		}
	}
	for _, env := range []string{"GOMAXPROCS", "ETCDCTL_API", "ETCD_UNSUPPORTED_ARCH"} {
		if key, rule, _ := EnvKey(env); key != "" || rule != "" {
			t.Errorf("%s is not etcd's setting, got key %q rule %q", env, key, rule)
		}
	}
}

// TestEnvAndYAMLAreOneConfig: an environment file and the YAML saying the
// same thing build the same embed.Config, and rendering the env back is
// stable.
func TestEnvAndYAMLAreOneConfig(t *testing.T) {
	env := `ETCD_NAME=m1
ETCD_DATA_DIR=/var/lib/etcd
ETCD_LISTEN_PEER_URLS=https://10.0.0.1:2380
ETCD_LISTEN_CLIENT_URLS=https://10.0.0.1:2379,https://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.1:2379
ETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.1:2380
ETCD_INITIAL_CLUSTER=m1=https://10.0.0.1:2380
ETCD_HEARTBEAT_INTERVAL=100
ETCD_ELECTION_TIMEOUT=1000
ETCD_CERT_FILE=/ssl/server.pem
ETCD_KEY_FILE=/ssl/server-key.pem
ETCD_TRUSTED_CA_FILE=/ssl/ca.pem
ETCD_CLIENT_CERT_AUTH=true
ETCD_PEER_CERT_FILE=/ssl/peer.pem
ETCD_PEER_KEY_FILE=/ssl/peer-key.pem
ETCD_PEER_TRUSTED_CA_FILE=/ssl/ca.pem
ETCD_PEER_CLIENT_CERT_AUTH=1
ETCD_PEER_CERT_ALLOWED_CN=m1,m2
ETCD_LOG_OUTPUTS=stderr
ETCD_GRPC_KEEPALIVE_TIMEOUT=20s
ETCD_SOCKET_REUSE_ADDRESS=true
ETCD_MAX_CONCURRENT_STREAMS=100
ETCDKIT_BACKUP_DIR=/backups
ETCDKIT_BACKUP_SCHEDULE=@every 6h
ETCDKIT_BACKUP_KEEP=3
`
	yml := `name: m1
data-dir: /var/lib/etcd
listen-peer-urls: https://10.0.0.1:2380
listen-client-urls: https://10.0.0.1:2379,https://127.0.0.1:2379
advertise-client-urls: https://10.0.0.1:2379
initial-advertise-peer-urls: https://10.0.0.1:2380
initial-cluster: m1=https://10.0.0.1:2380
heartbeat-interval: 100
election-timeout: 1000
client-transport-security: {cert-file: /ssl/server.pem, key-file: /ssl/server-key.pem, trusted-ca-file: /ssl/ca.pem, client-cert-auth: true}
peer-transport-security: {cert-file: /ssl/peer.pem, key-file: /ssl/peer-key.pem, trusted-ca-file: /ssl/ca.pem, client-cert-auth: true, allowed-cn: [m1, m2]}
log-outputs: [stderr]
grpc-keepalive-timeout: 20s
socket-options: {reuse-address: true}
max-concurrent-streams: 100
etcdkit: {backup: {dir: /backups, schedule: "@every 6h", keep: 3}}
`
	fromEnv, err := Parse("etcd.conf", []byte(env))
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := Parse("etcd.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := fromEnv.Embed()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fromYAML.Embed()
	if err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		what   string
		got, w any
	}{
		{"peer allowed CNs", a.PeerTLSInfo.AllowedCNs, b.PeerTLSInfo.AllowedCNs},
		{"peer client cert auth", a.PeerTLSInfo.ClientCertAuth, true},
		{"keepalive timeout", a.GRPCKeepAliveTimeout, b.GRPCKeepAliveTimeout},
		{"reuse address", a.SocketOpts.ReuseAddress, true},
		{"max streams", a.MaxConcurrentStreams, b.MaxConcurrentStreams},
		{"client URLs", fmt.Sprint(a.ListenClientUrls), fmt.Sprint(b.ListenClientUrls)},
		{"log outputs", a.LogOutputs, b.LogOutputs},
	} {
		if fmt.Sprint(check.got) != fmt.Sprint(check.w) {
			t.Errorf("%s: env gives %v, YAML %v", check.what, check.got, check.w)
		}
	}
	ya, _ := fromEnv.Marshal()
	yb, _ := fromYAML.Marshal()
	if string(ya) != string(yb) {
		t.Fatalf("env and YAML differ:\n%s\n---\n%s", ya, yb)
	}
	// Env -> config -> env -> config is stable.
	out, err := fromEnv.MarshalEnv()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("again", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	yc, _ := again.Marshal()
	if string(yc) != string(ya) {
		t.Fatalf("re-rendered env differs:\n%s\n---\n%s", yc, ya)
	}
}

// TestEnvMessagesNameTheVariable: problems found after mapping still name
// the variable and its line, not the YAML key.
func TestEnvMessagesNameTheVariable(t *testing.T) {
	src := "ETCD_NAME=m1\nETCD_DATA_DIR=/d\nETCD_LISTEN_PEER_URLS=https://10.0.0.1:2380\nETCD_LISTEN_CLIENT_URLS=https://10.0.0.1:2379\n" +
		"ETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.1:2379\nETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.1:2380\n" +
		"ETCD_INITIAL_CLUSTER=m2=https://10.0.0.2:2380\nETCD_CERT_FILE=/s.pem\nETCD_KEY_FILE=/k.pem\nETCD_AUTO_TLS=true\n" +
		"ETCD_PEER_CERT_FILE=/p.pem\nETCD_PEER_KEY_FILE=/pk.pem\nETCD_ELECTION_TIMEOUT=200\n"
	c, err := Parse("etcd.conf", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Validate(ValidateOptions{File: "etcd.conf"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"etcd.conf:7: ETCD_INITIAL_CLUSTER: does not name this member \"m1\"",
		"etcd.conf:10: ETCD_AUTO_TLS: auto-tls is set together with ETCD_CERT_FILE",
		"remove ETCD_AUTO_TLS",
		"etcd.conf:13: ETCD_ELECTION_TIMEOUT: 200ms is less than 5 x heartbeat-interval",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Unknown and removed variables are errors naming the line.
	_, err = Parse("etcd.conf", []byte("ETCD_NAME=m1\nETCD_LISTEN_CLIENT_URL=x\nETCD_ENABLE_V2=true\n"))
	if err == nil || !strings.Contains(err.Error(), `etcd.conf:2: ETCD_LISTEN_CLIENT_URL: etcd does not read this variable; did you mean "ETCD_LISTEN_CLIENT_URLS"?`) ||
		!strings.Contains(err.Error(), "etcd.conf:3: ETCD_ENABLE_V2: the v2 API was removed") {
		t.Fatalf("got %v", err)
	}
}

func TestIsEnvFile(t *testing.T) {
	for src, want := range map[string]bool{
		"# etcd\nETCD_NAME=x\n": true,
		"\n\n  ETCD_NAME = x\n": true,
		"name: x\n":             false,
		"# a=b\nname: x\n":      false,
		"---\nname: x\n":        false,
		"{\"name\": \"x\"}\n":   false,
		"":                      false,
		"export ETCD_NAME=x\n":  true,
		"key: a=b\n":            false,
	} {
		if got := IsEnvFile([]byte(src)); got != want {
			t.Errorf("IsEnvFile(%q) = %v", src, got)
		}
	}
}

// FuzzParseEnvFile: the parser never panics, names are valid, lines are
// in the file, and what QuoteEnvValue writes reads back unchanged.
func FuzzParseEnvFile(f *testing.F) {
	for _, seed := range []string{
		"ETCD_NAME=\"master01\"\nETCD_AUTO_TLS=true\n",
		"# c\n; c\nA='x y'\nB=\"a\\\"b\\\\c\\$d\"\nC=e\\\nf\n",
		"export X=1\nnot an assignment\nD=\"open\n",
		"A=x # y\r\nB=\t  z \t\n",
		"=\n'\n\"\n\\",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, src string) {
		vars, errs := ParseEnvFile([]byte(src))
		nLines := strings.Count(src, "\n") + 1
		for _, v := range vars {
			if !envNameRE.MatchString(v.Name) || v.Line < 1 || v.Line > nLines {
				t.Fatalf("bad var %+v from %q", v, src)
			}
		}
		for _, e := range errs {
			if e.Line < 1 || e.Line > nLines {
				t.Fatalf("bad error line %+v from %q", e, src)
			}
		}
		var b strings.Builder
		for _, v := range vars {
			fmt.Fprintf(&b, "%s=%s\n", v.Name, QuoteEnvValue(v.Value))
		}
		again, errs := ParseEnvFile([]byte(b.String()))
		if len(errs) > 0 || len(again) != len(vars) {
			t.Fatalf("re-read of %q: %v %v", b.String(), again, errs)
		}
		for i := range vars {
			if again[i].Name != vars[i].Name || again[i].Value != vars[i].Value {
				t.Fatalf("round trip changed %+v into %+v", vars[i], again[i])
			}
		}
		// Parse must not panic on anything either.
		_, _ = ParseAll("fuzz", []byte(src))
	})
}
