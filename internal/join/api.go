package join

import (
	"errors"
	"fmt"
	"time"

	"github.com/etcdkit/etcdkit/internal/ops"
)

// The endpoint's HTTP API: one POST of a Request to JoinPath, answered by
// a Response or an ErrorResponse. Both are plain public data: certificate
// requests go out, certificates come back, and neither type has a field
// that could hold a private key (a test asserts it).
const (
	JoinPath = "/v1/join"
	// DefaultPort is the join endpoint's port unless the config says
	// otherwise: next to etcd's 2379 (clients), 2380 (peers) and 2381
	// (kubeadm's metrics).
	DefaultPort = 2382
	// maxBody bounds a request: three CSRs and a few names.
	maxBody = 64 << 10
)

// Request asks the endpoint to add a member and sign its certificates.
type Request struct {
	Token     string `json:"token"`
	Name      string `json:"name"`
	PeerURL   string `json:"peerURL"`
	ClientURL string `json:"clientURL"`
	// The certificate signing requests, PEM: the joiner's server and peer
	// identities (names and IPs of its URLs) and its health-check client.
	ServerCSR string `json:"serverCSR"`
	PeerCSR   string `json:"peerCSR"`
	ClientCSR string `json:"clientCSR"`
	// Layout names the client certificate the kubeadm way when "kubeadm".
	Layout string `json:"layout,omitempty"`
}

// Response is a member added and its certificates.
type Response struct {
	// ClusterName is the initial-cluster-token, ClusterID etcd's id.
	ClusterName string `json:"clusterName"`
	ClusterID   string `json:"clusterID"`
	MemberID    string `json:"memberID"`
	// Existing is set when the member was already in the list (a re-run
	// after an interrupted join).
	Existing bool `json:"existing,omitempty"`
	// InitialCluster is the new member's initial-cluster, from the live
	// member list.
	InitialCluster string `json:"initialCluster"`
	// ClientURLs are the other members', for health checks and promotion.
	ClientURLs []string `json:"clientURLs"`
	// CABundle is every CA certificate members trust (PEM).
	CABundle string `json:"caBundle"`
	// The signed certificates, PEM, each followed by its chain.
	ServerCert string `json:"serverCert"`
	PeerCert   string `json:"peerCert"`
	ClientCert string `json:"clientCert"`
	// Layout is the serving member's PKI layout, the joiner's default.
	Layout   string   `json:"layout"`
	Settings Settings `json:"settings"`
}

// Settings are what every member of a cluster should share, copied from
// the serving member's config.
type Settings struct {
	HeartbeatMs             uint   `json:"heartbeatMs,omitempty"`
	ElectionMs              uint   `json:"electionMs,omitempty"`
	SnapshotCount           uint64 `json:"snapshotCount,omitempty"`
	QuotaBackendBytes       int64  `json:"quotaBackendBytes,omitempty"`
	MaxLearners             int    `json:"maxLearners,omitempty"`
	AutoCompactionMode      string `json:"autoCompactionMode,omitempty"`
	AutoCompactionRetention string `json:"autoCompactionRetention,omitempty"`
	// Backup is the scheduled-snapshot config: whichever member leads
	// takes them, so every member needs it.
	BackupDir      string `json:"backupDir,omitempty"`
	BackupSchedule string `json:"backupSchedule,omitempty"`
	BackupKeep     int    `json:"backupKeep,omitempty"`
}

// Reason classifies a refusal, so the joiner knows whether to retry.
type Reason string

const (
	ReasonBadRequest  Reason = "bad-request"
	ReasonToken       Reason = "token"
	ReasonExpired     Reason = "token-expired"
	ReasonUsedUp      Reason = "token-used-up"
	ReasonRateLimited Reason = "rate-limited"
	// ReasonRefused is a membership change etcdkit will not make (name or
	// URL in use).
	ReasonRefused Reason = "refused"
	// ReasonUnhealthy is a cluster that cannot take a member now (quorum
	// lost, members down).
	ReasonUnhealthy Reason = "unhealthy"
	// ReasonBusy is another learner still catching up: etcd allows one
	// at a time by default. The joiner retries after RetryAfter.
	ReasonBusy     Reason = "busy"
	ReasonInternal Reason = "internal"
)

// ErrorResponse is a refusal.
type ErrorResponse struct {
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
	// RetryAfter is set for busy and rate-limited refusals.
	RetryAfter time.Duration `json:"retryAfter,omitempty"`
}

// Refusal is an ErrorResponse as an error, on both sides.
type Refusal struct {
	ErrorResponse
	// Endpoint is the URL that refused (joiner side).
	Endpoint string
}

func (r *Refusal) Error() string {
	if r.Endpoint != "" {
		return fmt.Sprintf("the join endpoint %s refused: %s", r.Endpoint, r.Message)
	}
	return r.Message
}

// Is lets callers test refusals with errors.Is: a token refusal matches
// the token errors, an unhealthy cluster ops.ErrUnhealthy (exit code 3).
func (r *Refusal) Is(target error) bool {
	switch r.Reason {
	case ReasonToken:
		return target == ErrTokenRefused
	case ReasonExpired:
		return target == ErrTokenExpired
	case ReasonUsedUp:
		return target == ErrTokenUsedUp
	case ReasonUnhealthy:
		return target == ops.ErrUnhealthy || target == ops.ErrRefused
	case ReasonRefused:
		return target == ops.ErrRefused
	}
	return false
}

func refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{ErrorResponse: ErrorResponse{Reason: reason, Message: fmt.Sprintf(format, args...)}}
}

// refusalOf classifies an error from the endpoint's work.
func refusalOf(err error) *Refusal {
	var r *Refusal
	switch {
	case errors.As(err, &r):
		return r
	case errors.Is(err, ErrTokenRefused):
		return refuse(ReasonToken, "%v", err)
	case errors.Is(err, ErrTokenExpired):
		return refuse(ReasonExpired, "%v; create a new one with `etcdkit token create`", err)
	case errors.Is(err, ErrTokenUsedUp):
		return refuse(ReasonUsedUp, "%v; create a new one with `etcdkit token create`", err)
	case errors.Is(err, ops.ErrUnhealthy):
		return refuse(ReasonUnhealthy, "%v", err)
	case errors.Is(err, ops.ErrRefused):
		return refuse(ReasonRefused, "%v", err)
	}
	return refuse(ReasonInternal, "%v", err)
}
