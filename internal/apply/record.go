package apply

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// memberRecord is what apply writes to RecordPath once a member has run:
// which cluster (the spec's name, the initial cluster token) and member
// the data dir belongs to. It holds no time, so writing it again with
// the same member is no change.
type memberRecord struct {
	Cluster   string `json:"cluster"`
	ClusterID string `json:"clusterID"`
	Member    string `json:"member"`
	MemberID  string `json:"memberID"`
	PeerURL   string `json:"peerURL"`
}

func (m *memberRecord) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// matches says whether the record describes the WAL's member and the
// spec's member of the spec's cluster; the reason when not.
func (m *memberRecord) matches(w *walIdentity, cluster, member, peerURL string) (bool, string) {
	switch {
	case m.Cluster != cluster:
		return false, fmt.Sprintf("%s says it belongs to cluster %q, not %q", RecordPath, m.Cluster, cluster)
	case m.Member != member:
		return false, fmt.Sprintf("%s says it is member %q, not %q", RecordPath, m.Member, member)
	case m.PeerURL != peerURL:
		return false, fmt.Sprintf("%s says its peer URL is %s, not %s", RecordPath, m.PeerURL, peerURL)
	case w != nil && (m.ClusterID != hexID(w.ClusterID) || m.MemberID != hexID(w.MemberID)):
		return false, fmt.Sprintf("%s names cluster %s, member %s, but the data is %s (the data dir was replaced)", RecordPath, m.ClusterID, m.MemberID, w)
	}
	return true, ""
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }
