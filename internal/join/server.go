package join

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/connect"
	"github.com/etcdkit/etcdkit/internal/ops"
	"github.com/etcdkit/etcdkit/internal/pki"
)

// busyRetry is how long a joiner waits before asking again while another
// learner catches up.
const busyRetry = 2 * time.Second

// Endpoint serves joins. It holds the CA key (through CAPair), adds each
// joining member as a learner through Target, and signs the certificate
// requests of keys that never leave the joiner.
type Endpoint struct {
	// CAPair is the CA that signs. It is read again for every join, so a
	// `pki rotate-ca` is picked up without a restart.
	CAPair pki.Pair
	Layout pki.Layout
	// Target reaches the cluster as a client, with the member's own
	// client identity.
	Target *connect.Target
	Store  *Store
	// ClusterName is the initial-cluster-token; Settings are copied to
	// every joiner.
	ClusterName string
	Settings    Settings
	// MaxLearners is etcd's max-learners (default 1).
	MaxLearners int
	// Validity of the certificates signed; 0 is pki's default. The CA's
	// own expiry caps it.
	Validity time.Duration
	// Backup, when set, takes a snapshot before each member add.
	Backup ops.Backup
	// Promote, when set, is called with each member added, to promote it
	// once it has started and caught up.
	Promote func(memberID string)
	// ChangeTimeout bounds the retries of the member add.
	ChangeTimeout time.Duration
	Log           *zap.Logger
	Now           func() time.Time

	limiter *limiter
	// mu serializes joins through this endpoint: etcd takes one learner
	// at a time by default, and two adds racing would both pass the
	// learner check.
	mu sync.Mutex
}

func (ep *Endpoint) now() time.Time {
	if ep.Now != nil {
		return ep.Now()
	}
	return time.Now()
}

func (ep *Endpoint) log() *zap.Logger {
	if ep.Log == nil {
		return zap.NewNop()
	}
	return ep.Log
}

// Handler is the endpoint's HTTP API.
func (ep *Endpoint) Handler() http.Handler {
	if ep.limiter == nil {
		ep.limiter = newLimiter()
		ep.limiter.Now = ep.now
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+JoinPath, ep.serveJoin)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, refuse(ReasonBadRequest, "no such endpoint %s %s; `etcdkit join` posts to %s", r.Method, r.URL.Path, JoinPath))
	})
	return mux
}

func (ep *Endpoint) serveJoin(w http.ResponseWriter, r *http.Request) {
	source, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		source = r.RemoteAddr
	}
	lg := ep.log().With(zap.String("source", source))
	if ok, wait := ep.limiter.Allow(source); !ok {
		rf := refuse(ReasonRateLimited, "too many failed join attempts from %s; try again in %s", source, wait.Round(time.Second))
		rf.RetryAfter = wait
		lg.Warn("join refused", zap.String("reason", string(rf.Reason)))
		writeError(w, http.StatusTooManyRequests, rf)
		return
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		ep.limiter.Fail(source)
		writeError(w, http.StatusBadRequest, refuse(ReasonBadRequest, "the request is not a join request: %v", err))
		return
	}
	lg = lg.With(zap.String("member", req.Name), zap.String("peer-url", req.PeerURL))
	resp, err := ep.Join(r.Context(), &req)
	if err != nil {
		rf := refusalOf(err)
		switch rf.Reason {
		case ReasonBadRequest, ReasonToken, ReasonExpired, ReasonUsedUp:
			ep.limiter.Fail(source)
		}
		lg.Warn("join refused", zap.String("reason", string(rf.Reason)), zap.String("message", rf.Message))
		writeError(w, statusOf(rf.Reason), rf)
		return
	}
	lg.Info("member joined as a learner; certificates signed", zap.String("member-id", resp.MemberID), zap.Bool("existing", resp.Existing))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func statusOf(r Reason) int {
	switch r {
	case ReasonBadRequest:
		return http.StatusBadRequest
	case ReasonToken, ReasonExpired, ReasonUsedUp:
		return http.StatusForbidden
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonRefused:
		return http.StatusConflict
	case ReasonUnhealthy, ReasonBusy:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, rf *Refusal) {
	w.Header().Set("Content-Type", "application/json")
	if rf.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int(rf.RetryAfter.Seconds()+0.999)))
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(rf.ErrorResponse)
}

// checked is a request that passed validation.
type checked struct {
	token                  Token
	server, peer, client   *x509.CertificateRequest
	serverHosts, peerHosts []string
}

// check validates everything a request says before anything is read from
// or written to the cluster.
func check(req *Request) (*checked, error) {
	bad := func(err error) error { return refuse(ReasonBadRequest, "%v", err) }
	tok, err := ParseToken(req.Token)
	if err != nil {
		return nil, refuse(ReasonToken, "%v", err)
	}
	if err := CheckName(req.Name); err != nil {
		return nil, bad(err)
	}
	if _, err := checkMemberURL("peer URL", req.PeerURL); err != nil {
		return nil, bad(err)
	}
	if _, err := checkMemberURL("client URL", req.ClientURL); err != nil {
		return nil, bad(err)
	}
	if req.Layout != "" {
		if _, err := pki.ParseLayout(req.Layout); err != nil {
			return nil, bad(err)
		}
	}
	c := &checked{token: tok}
	if c.server, err = parseCSR("server certificate request", req.ServerCSR); err != nil {
		return nil, bad(err)
	}
	if c.peer, err = parseCSR("peer certificate request", req.PeerCSR); err != nil {
		return nil, bad(err)
	}
	if c.client, err = parseCSR("client certificate request", req.ClientCSR); err != nil {
		return nil, bad(err)
	}
	if err := checkHosts("server certificate request", c.server, req, req.ClientURL); err != nil {
		return nil, bad(err)
	}
	if err := checkHosts("peer certificate request", c.peer, req, req.PeerURL); err != nil {
		return nil, bad(err)
	}
	if err := checkClientCSR(c.client); err != nil {
		return nil, bad(err)
	}
	c.serverHosts, c.peerHosts = csrHosts(c.server), csrHosts(c.peer)
	return c, nil
}

// Join checks a request and the token, adds the member as a learner and
// signs its certificates. The token's use is taken just before the add
// and given back when the add fails, so a refused join costs nothing.
func (ep *Endpoint) Join(ctx context.Context, req *Request) (*Response, error) {
	c, err := check(req)
	if err != nil {
		return nil, err
	}
	if _, err := ep.Store.Check(ctx, c.token); err != nil {
		return nil, err
	}
	ca, err := pki.LoadCA(ep.CAPair)
	if err != nil {
		return nil, fmt.Errorf("the join endpoint cannot read its CA: %w", err)
	}
	ca.Now = ep.Now

	ep.mu.Lock()
	defer ep.mu.Unlock()
	ms, err := ops.ListMembers(ctx, ep.Target)
	if err != nil {
		return nil, refuse(ReasonUnhealthy, "cannot read the member list: %v", err)
	}
	add := ops.AddOptions{Name: req.Name, PeerURLs: []string{req.PeerURL}, ClientURLs: []string{req.ClientURL}}
	existing, err := ops.CheckAdd(ms, add)
	if err != nil {
		return nil, err
	}
	if existing != nil && existing.Started {
		return nil, refuse(ReasonRefused, "%s is already in the cluster and has started; to join it again from new files, remove it first (`etcdkit member remove %s`) and empty its data dir", existing.Label(), existing.Ref())
	}
	if existing == nil {
		if err := ep.checkLearners(ms); err != nil {
			return nil, err
		}
	}
	if _, err := ep.Store.Consume(ctx, c.token, req.Name); err != nil {
		return nil, err
	}
	refund := func(cause error) error {
		if rerr := ep.Store.Refund(context.WithoutCancel(ctx), c.token, req.Name); rerr != nil {
			ep.log().Warn("could not give the token's use back", zap.String("token-id", c.token.ID), zap.Error(rerr))
		}
		return cause
	}
	m := existing
	if m == nil {
		if ep.Backup != nil {
			if _, err := ep.Backup(ctx, "before join of member "+req.Name); err != nil {
				return nil, refund(refuse(ReasonInternal, "snapshot before adding member %q (nothing was changed): %v", req.Name, err))
			}
		}
		m, ms, err = ops.AddMember(ctx, ep.Target, ms, add.PeerURLs, false, ep.ChangeTimeout)
		if err != nil {
			if errors.Is(err, rpctypes.ErrTooManyLearners) {
				rf := refuse(ReasonBusy, "another member is joining as a learner (%v); retrying", err)
				rf.RetryAfter = busyRetry
				return nil, refund(rf)
			}
			return nil, refund(fmt.Errorf("add member %q (%s): %w", req.Name, req.PeerURL, err))
		}
	}
	resp, err := ep.sign(ca, c, req, ms, m)
	if err != nil {
		// The member is in the list but has no certificates: a re-run
		// with the same name and peer URL picks it up.
		return nil, fmt.Errorf("member %q was added (id %s) but its certificates were not signed: %w; run the join again with a new token", req.Name, m.ID, err)
	}
	resp.Existing = existing != nil
	if ep.Promote != nil {
		ep.Promote(m.ID)
	}
	return resp, nil
}

// checkLearners refuses, for now, a join while as many learners as etcd
// allows are still catching up; the joiner retries.
func (ep *Endpoint) checkLearners(ms *ops.Membership) error {
	limit := ep.MaxLearners
	if limit <= 0 {
		limit = 1
	}
	var learners []string
	for _, m := range ms.Members {
		if m.Learner {
			learners = append(learners, m.Label())
		}
	}
	if len(learners) < limit {
		return nil
	}
	rf := refuse(ReasonBusy, "%s is still joining as a learner and etcd allows %d learner(s) at a time (max-learners); the join waits for it to be promoted. If that join was abandoned, remove the learner: `etcdkit member remove ID`", strings.Join(learners, ", "), limit)
	rf.RetryAfter = busyRetry
	return rf
}

// sign issues the member's server, peer and health-check client
// certificates for the public keys of its requests.
func (ep *Endpoint) sign(ca *pki.CA, c *checked, req *Request, ms *ops.Membership, m *ops.Member) (*Response, error) {
	layout := ep.Layout
	if req.Layout != "" {
		layout = pki.Layout(req.Layout)
	}
	clientReq := pki.LeafRequest{Role: pki.RoleClient, CommonName: req.Name + "-healthcheck-client", PublicKey: c.client.PublicKey, Validity: ep.Validity}
	if layout == pki.LayoutKubeadm {
		clientReq.CommonName, clientReq.Organization = pki.KubeadmHealthcheckClientCN, []string{pki.KubeadmMastersGroup}
	}
	reqs := []pki.LeafRequest{
		{Role: pki.RoleServer, CommonName: req.Name, Hosts: c.serverHosts, PublicKey: c.server.PublicKey, Validity: ep.Validity},
		{Role: pki.RolePeer, CommonName: req.Name, Hosts: c.peerHosts, PublicKey: c.peer.PublicKey, Validity: ep.Validity},
		clientReq,
	}
	var pems []string
	for _, lr := range reqs {
		leaf, err := ca.Issue(lr)
		if err != nil {
			return nil, err
		}
		pems = append(pems, string(pki.EncodeCert(append([]*x509.Certificate{leaf.Cert}, leaf.Chain...)...)))
	}
	bundle := ca.Bundle
	if len(bundle) == 0 {
		bundle = []*x509.Certificate{ca.Cert}
	}
	var others []string
	for _, o := range ms.Members {
		if o.ID != m.ID {
			others = append(others, o.ClientURLs...)
		}
	}
	return &Response{
		ClusterName:    ep.ClusterName,
		ClusterID:      ms.ClusterID,
		MemberID:       m.ID,
		InitialCluster: ops.InitialCluster(ms, m, req.Name),
		ClientURLs:     others,
		CABundle:       string(pki.EncodeCert(bundle...)),
		ServerCert:     pems[0],
		PeerCert:       pems[1],
		ClientCert:     pems[2],
		Layout:         string(ep.Layout),
		Settings:       ep.Settings,
	}, nil
}

// servingCert issues the endpoint's TLS certificate in memory (its key is
// never written): the CA itself follows the leaf in the chain, so a joiner
// can find the certificate its --ca-hash pins.
func servingCert(ca *pki.CA, hosts []string, validity time.Duration) (*servedCert, error) {
	leaf, err := ca.Issue(pki.LeafRequest{
		Role: pki.RoleServer, CommonName: "etcdkit-join-endpoint", Hosts: hosts,
		KeyAlgorithm: pki.AlgorithmOf(ca.Cert.PublicKey), Validity: validity,
		Subject: &pkix.Name{CommonName: "etcdkit-join-endpoint"},
	})
	if err != nil {
		return nil, fmt.Errorf("issue the join endpoint's certificate: %w", err)
	}
	chain := [][]byte{leaf.Cert.Raw}
	for _, c := range leaf.Chain {
		chain = append(chain, c.Raw)
	}
	chain = append(chain, ca.Cert.Raw)
	return &servedCert{leaf: leaf, chain: chain, ca: ca.Cert}, nil
}

type servedCert struct {
	leaf  *pki.Leaf
	chain [][]byte
	ca    *x509.Certificate
}
