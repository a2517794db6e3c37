package pki

import (
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"
)

const etcdCfsslConfig = `{
  "signing": {
    "default": {"expiry": "168h"},
    "profiles": {
      "server": {"expiry": "43800h", "usages": ["signing", "key encipherment", "server auth"]},
      "client": {"expiry": "43800h", "usages": ["signing", "key encipherment", "client auth"]},
      "peer":   {"expiry": "43800h", "usages": ["signing", "key encipherment", "server auth", "client auth"], "auth_key": "x"}
    }
  }
}`

func TestCfsslConfigProfiles(t *testing.T) {
	c, err := ParseCfsslConfig("ca-config.json", []byte(etcdCfsslConfig))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Profile("peer")
	if err != nil {
		t.Fatal(err)
	}
	if p.Validity != 43800*time.Hour || p.Profile.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment || !p.Profile.Exact ||
		!slices.Equal(p.Profile.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("peer profile: %+v", p)
	}
	for name, want := range map[string]Role{"peer": RolePeer, "server": RoleServer, "client": RoleClient} {
		p, _ := c.Profile(name)
		if r, err := p.Role(); err != nil || r != want {
			t.Fatalf("profile %s: role %v, %v", name, r, err)
		}
	}
}

func TestCfsslBadInput(t *testing.T) {
	c, err := ParseCfsslConfig("ca-config.json", []byte(etcdCfsslConfig))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Profile("pear")
	wantErr(t, err, `profile "pear" is not in ca-config.json (it has client, peer, server); cfssl would silently have used the default profile`)

	for _, tc := range []struct{ json, want string }{
		{`{"signing": {"profiles": {"peer": {"expiry": "1y"}}}}`, `ca-config.json: signing.profiles.peer.expiry: invalid duration "1y"`},
		{`{"signing": {"profiles": {"peer": {"usages": ["server auht"]}}}}`, `signing.profiles.peer.usages: unknown usage "server auht"; did you mean "server auth"?`},
		{`{"signing": {"profiles": {"peer": {"expirey": "1h"}}}}`, `signing.profiles.peer.expirey: unknown key; did you mean "expiry"?`},
		{`{"signing": {"profiles": {"peer": {"crl_url": "http://x"}}}}`, `signing.profiles.peer.crl_url: not supported by etcdkit`},
		{`{"signing": {"profiles": {"ca": {"ca_constraint": {"is_ca": true}}}}}`, `signing.profiles.ca.ca_constraint: not supported by etcdkit`},
		{`{"profiles": {}}`, `ca-config.json: no "signing" section`},
		{`{"signing": `, `ca-config.json: not a cfssl config: invalid JSON`},
	} {
		_, err := ParseCfsslConfig("ca-config.json", []byte(tc.json))
		wantErr(t, err, tc.want)
	}
}

func TestCfsslCSR(t *testing.T) {
	csr, err := ParseCfsslCSR("m1-csr.json", []byte(`{
		"CN": "master01",
		"hosts": ["192.168.100.200", "master01"],
		"key": {"algo": "rsa", "size": 3072},
		"names": [{"C": "US", "ST": "CA", "L": "SF", "O": "etcd", "OU": "ops", "E": "ops@example.com"}]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	s := csr.Subject
	if csr.KeyAlgorithm != RSA3072 || s.CommonName != "master01" || s.Country[0] != "US" || s.Province[0] != "CA" || s.Locality[0] != "SF" ||
		s.Organization[0] != "etcd" || s.OrganizationalUnit[0] != "ops" || len(s.ExtraNames) != 1 || !slices.Equal(csr.Hosts, []string{"192.168.100.200", "master01"}) {
		t.Fatalf("csr: %+v", csr)
	}
	// cfssl's default key is ECDSA P-256.
	if csr, err := ParseCfsslCSR("x.json", []byte(`{"CN": "a"}`)); err != nil || csr.KeyAlgorithm != ECDSAP256 {
		t.Fatalf("default key: %+v %v", csr, err)
	}
	for _, tc := range []struct{ json, want string }{
		{`{"CN": "a", "key": {"algo": "dsa", "size": 1024}}`, `m1-csr.json: key.algo: unknown key algorithm "dsa"; use rsa (size 2048, 3072 or 4096), ecdsa (size 256 or 384) or ed25519`},
		{`{"CN": "a", "key": {"algo": "ecdsa", "size": 521}}`, `key.size: ECDSA size 521 is not supported`},
		{`{"CN": "a", "key": {"algo": "rsa", "size": 1024}}`, `key.size: RSA size 1024 is not supported`},
		{`{"hosts": ["a"]}`, `m1-csr.json: CN: required`},
		{`{"CN": "a", "host": ["a"]}`, `m1-csr.json: host: unknown key; did you mean "hosts"?`},
		{`{"CN": "a", "names": [{"OO": "x"}]}`, `names[0].OO: unknown key; did you mean "o"?`},
		{`{"CN": "a", "hosts": "a"}`, `m1-csr.json: hosts: want []string`},
	} {
		_, err := ParseCfsslCSR("m1-csr.json", []byte(tc.json))
		wantErr(t, err, tc.want)
	}
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant it to contain %q", err, want)
	}
}
