package ops

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/etcdkit/etcdkit/internal/connect"
)

// EndpointStatus is what one member says about itself.
type EndpointStatus struct {
	Endpoint         string    `json:"endpoint"`
	Name             string    `json:"name,omitempty"`
	ID               string    `json:"id,omitempty"`
	Version          string    `json:"version,omitempty"`
	StorageVersion   string    `json:"storageVersion,omitempty"`
	DBSize           int64     `json:"dbSize"`
	DBSizeInUse      int64     `json:"dbSizeInUse"`
	Leader           string    `json:"leader,omitempty"`
	IsLeader         bool      `json:"isLeader"`
	IsLearner        bool      `json:"isLearner"`
	RaftTerm         uint64    `json:"raftTerm"`
	RaftIndex        uint64    `json:"raftIndex"`
	RaftAppliedIndex uint64    `json:"raftAppliedIndex"`
	Errors           []string  `json:"errors,omitempty"`
	Alarms           []string  `json:"alarms,omitempty"`
	CertNotAfter     time.Time `json:"certNotAfter,omitzero"`
	Error            string    `json:"error,omitempty"`
}

// Status asks every endpoint for its status, its alarms and the expiry of
// the certificate it serves.
func Status(ctx context.Context, t *connect.Target) []EndpointStatus {
	return forEach(t.Endpoints, func(ep string) EndpointStatus {
		return endpointStatus(ctx, t, ep)
	})
}

func endpointStatus(ctx context.Context, t *connect.Target, ep string) EndpointStatus {
	s := EndpointStatus{Endpoint: ep}
	if err := reachable(ctx, t, ep); err != nil {
		s.Error = err.Error()
		return s
	}
	// The served certificate's expiry is read off this client's own TLS
	// handshake.
	var (
		mu       sync.Mutex
		notAfter time.Time
	)
	cli, err := t.ClientWith(func(cs tls.ConnectionState) {
		if len(cs.PeerCertificates) > 0 {
			mu.Lock()
			notAfter = cs.PeerCertificates[0].NotAfter
			mu.Unlock()
		}
	}, ep)
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer cli.Close()
	cctx, cancel := t.Ctx(ctx)
	defer cancel()
	st, err := cli.Status(cctx, ep)
	if err != nil {
		s.Error = explain(err).Error()
		return s
	}
	s.ID = fmt.Sprintf("%x", st.Header.MemberId)
	s.Version = st.Version
	s.StorageVersion = st.StorageVersion
	s.DBSize = st.DbSize
	s.DBSizeInUse = st.DbSizeInUse
	if st.Leader != 0 {
		s.Leader = fmt.Sprintf("%x", st.Leader)
	}
	s.IsLeader = st.Leader == st.Header.MemberId
	s.IsLearner = st.IsLearner
	s.RaftTerm = st.RaftTerm
	s.RaftIndex = st.RaftIndex
	s.RaftAppliedIndex = st.RaftAppliedIndex
	s.Errors = st.Errors
	if ml, err := cli.MemberList(cctx); err == nil {
		for _, m := range ml.Members {
			if m.ID == st.Header.MemberId {
				s.Name = m.Name
			}
		}
	}
	if al, err := cli.AlarmList(cctx); err == nil {
		for _, a := range al.Alarms {
			s.Alarms = append(s.Alarms, fmt.Sprintf("%s on %x", a.Alarm, a.MemberID))
		}
	}
	mu.Lock()
	s.CertNotAfter = notAfter
	mu.Unlock()
	return s
}
