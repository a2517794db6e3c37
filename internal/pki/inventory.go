package pki

import (
	"crypto/x509"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// Inventory is where a cluster's certificates are and what each must do:
// the CA directory, the trust files members and clients read, and every
// leaf with its role and the hosts it must cover. check, renew and rotate-ca
// work on an inventory; internal/pki/discover builds one from a directory,
// an `etcdkit up` directory, a cluster spec or an etcd config.
type Inventory struct {
	// Source says what the inventory was built from, for messages.
	Source string
	// Args are the command-line flags that find the same inventory again,
	// for the fix commands a check prints.
	Args   []string
	Layout Layout
	// CADir holds the CA certificate and, where certificates are issued,
	// its key.
	CADir string
	// Trust are the CA files that members and clients read besides the CA
	// directory's own (a member's ssl/ca.pem).
	Trust []TrustFile
	// Leaves are the leaf certificates, in a stable order.
	Leaves []Item
	// Members are the cluster's members, when known, for live probes.
	Members []Endpoint
}

// TrustFile is a CA bundle a member or a client verifies others with, and
// the CA key copy beside it, if any (kubeadm puts ca.key on every node).
type TrustFile struct {
	ID   string
	Pair Pair
}

// Item is one leaf certificate.
type Item struct {
	// ID names the leaf in listings and on the command line: "server",
	// "m1/peer", "client", "apiserver-etcd-client".
	ID     string
	Member string
	Role   Role
	Pair   Pair
	// Dir is the PKI directory the leaf belongs to, which `pki issue --out`
	// takes (for kubeadm's API server client, the etcd directory below it).
	Dir string
	// Trust is the CA file the leaf's user verifies its peers with; empty
	// means the CA directory's.
	Trust string
	// Needs are the hosts the certificate must cover, with why.
	Needs []Need
	// Required makes a missing file an error; a plain directory lists the
	// layout's names and only checks what exists.
	Required bool
}

// Need is a host a certificate must be valid for.
type Need struct {
	Host string `json:"host"`
	// Why is the setting that advertises or listens on it.
	Why string `json:"why"`
}

// Endpoint is a member's URLs, for probing what it serves and trusts.
type Endpoint struct {
	Name      string
	ClientURL string
	PeerURL   string
}

// CA is the CA pair of the inventory.
func (inv *Inventory) CA() Pair { return inv.Layout.CA(inv.CADir) }

// TrustFor is the CA file an item is verified against.
func (inv *Inventory) TrustFor(it *Item) string {
	if it.Trust != "" {
		return it.Trust
	}
	return inv.CA().Cert
}

// AllTrust is every trust file, the CA directory's first.
func (inv *Inventory) AllTrust() []TrustFile {
	out := []TrustFile{{ID: "ca", Pair: inv.CA()}}
	for _, t := range inv.Trust {
		if t.Pair.Cert != out[0].Pair.Cert {
			out = append(out, t)
		}
	}
	return out
}

// Select returns the items that names pick: an item's ID, a member name
// (all of its leaves) or a role (server, peer, client: every such leaf).
// Every name must pick something.
func (inv *Inventory) Select(names []string) ([]*Item, error) {
	var out []*Item
	for _, n := range names {
		found := false
		for i := range inv.Leaves {
			it := &inv.Leaves[i]
			if it.ID == n || it.Member == n || string(it.Role) == n || filepath.Base(it.ID) == n {
				found = true
				if !slices.Contains(out, it) {
					out = append(out, it)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no certificate %q in %s; it has %s", n, inv.Source, strings.Join(inv.ids(), ", "))
		}
	}
	return out, nil
}

func (inv *Inventory) ids() []string {
	var ids []string
	for _, it := range inv.Leaves {
		ids = append(ids, it.ID)
	}
	return ids
}

// command builds an etcdkit command line with the inventory's flags.
func (inv *Inventory) command(words ...string) string {
	return shellJoin(append(append([]string{"etcdkit"}, words...), inv.Args...))
}

// IssueCommand is the `pki issue` that re-creates an item's certificate
// with hosts, replacing the one there.
func (inv *Inventory) IssueCommand(it *Item, name string, hosts []string) string {
	words := []string{"pki", "issue", string(it.Role), name, "--dir", inv.CADir}
	out := it.Dir
	if out == "" {
		out = filepath.Dir(it.Pair.Cert)
	}
	if out != inv.CADir {
		words = append(words, "--out", out)
	}
	if len(hosts) > 0 && it.Role != RoleClient {
		words = append(words, "--hosts", strings.Join(hosts, ","))
	}
	return shellJoin(append(append([]string{"etcdkit"}, words...), "--force"))
}

// HostsOf lists a certificate's DNS names and IP addresses.
func HostsOf(c *x509.Certificate) []string {
	out := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// shellJoin quotes words that a shell would split.
func shellJoin(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n'\"$`\\|&;<>()*?[]#~") {
			w = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
		out[i] = w
	}
	return strings.Join(out, " ")
}
