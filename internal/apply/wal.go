package apply

import (
	"errors"
	"fmt"
	"os"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"google.golang.org/protobuf/proto"
)

// walIdentity is the cluster and member a data dir belongs to, from the
// metadata record etcd writes at the start of every WAL file.
type walIdentity struct {
	ClusterID uint64
	MemberID  uint64
}

func (w walIdentity) String() string {
	return fmt.Sprintf("cluster %x, member %x", w.ClusterID, w.MemberID)
}

// readWALIdentity decodes the first bytes of a WAL file (a CRC record,
// then the metadata record) with etcd's own decoder, so the host needs no
// etcd tool and only a few KiB cross the network.
func readWALIdentity(head []byte) (*walIdentity, error) {
	f, err := os.CreateTemp("", "etcdkit-wal-head-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Write(head); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	dec := wal.NewDecoder(fileutil.NewFileReader(f))
	for range 8 {
		var rec walpb.Record
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("the WAL's first %d bytes hold no metadata record: %w", len(head), err)
		}
		switch rec.GetType() {
		case wal.CrcType:
			dec.UpdateCRC(rec.GetCrc())
		case wal.MetadataType:
			var md etcdserverpb.Metadata
			if err := proto.Unmarshal(rec.GetData(), &md); err != nil {
				return nil, fmt.Errorf("the WAL's metadata record: %w", err)
			}
			return &walIdentity{ClusterID: md.GetClusterID(), MemberID: md.GetNodeID()}, nil
		}
	}
	return nil, errors.New("the WAL does not start with a metadata record")
}
