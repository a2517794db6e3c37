package robustness

import (
	"encoding/json"
	"syscall"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

func init() {
	Register(Scenario{
		Name:    "pki-renew",
		Summary: "`etcdkit pki renew --all` under load with no member restart: every member serves its renewed certificate from the next handshake, clients reconnect with theirs",
		Quick:   true,
		Skip:    NeedsCommand("pki", "renew"),
		Run: func(e *Env) {
			e.WaitWrites(150)
			// Renewal keeps each certificate's validity, so the renewed
			// one, issued seconds after the cluster was made, ends later.
			before := certExpiry(e)
			e.Etcdkit("pki", "renew", "--all", "--dir", string(e.Cluster.Dir))
			e.Redial()
			e.WaitWrites(100)
			after := certExpiry(e)
			for ep, t := range before {
				if !after[ep].After(t) {
					e.Problem("%s still serves the certificate valid until %v after the renewal", ep, t)
				}
			}
			e.Etcdkit("pki", "check", "--dir", string(e.Cluster.Dir))
			e.WaitWrites(100)
		},
	})
	Register(Scenario{
		Name: "pki-rotate-ca",
		Summary: "`etcdkit pki rotate-ca trust`, `reissue`, `finish` under load with no restart; then restart the members one at a time " +
			"and drop the old CA completely (`finish --drop-cross-signed`)",
		Skip: NeedsCommand("pki", "rotate-ca"),
		Run: func(e *Env) {
			dir := string(e.Cluster.Dir)
			e.WaitWrites(150)
			for _, phase := range []string{"trust", "reissue", "finish"} {
				e.Etcdkit("pki", "rotate-ca", phase, "--dir", dir)
				e.Redial()
				e.WaitWrites(100)
			}
			// A member drops the old CA from its pool only when it starts.
			for _, n := range e.Cluster.Names() {
				healed := e.Fault("restart " + n + " to load the new CA")
				e.Cluster.Stop(e.T, n, syscall.SIGTERM)
				e.WaitWrites(50)
				e.Cluster.Restart(n)
				healed()
				e.WaitWrites(50)
			}
			e.Etcdkit("pki", "rotate-ca", "finish", "--drop-cross-signed", "--dir", dir)
			e.Redial()
			e.WaitWrites(100)
			e.Etcdkit("pki", "check", "--dir", dir)
		},
	})
}

// certExpiry is when each member's served certificate expires, as
// `etcdkit status` reads it from a fresh TLS handshake.
func certExpiry(e *Env) map[string]time.Time {
	e.T.Helper()
	var ss []ops.EndpointStatus
	if err := json.Unmarshal([]byte(e.Etcdkit("status", "-o", "json").Stdout), &ss); err != nil {
		e.T.Fatalf("etcdkit status -o json: %v", err)
	}
	out := map[string]time.Time{}
	for _, s := range ss {
		out[s.Endpoint] = s.CertNotAfter
	}
	return out
}
