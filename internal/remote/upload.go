package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// Upload copies the local file to the remote path atomically with f's mode
// and owner, streaming it over one SSH session. It skips the transfer, and
// reports false, when the remote file already has the same sha256 (and
// mode and owner), so re-running apply does not resend the etcdkit binary;
// after a transfer the remote side checks the sha256 before the file
// replaces the old one, so a truncated or corrupted copy never lands.
func (c *Conn) Upload(ctx context.Context, local, remote string, f File) (bool, error) {
	sum, size, err := FileSHA256(local)
	if err != nil {
		return false, c.host.errorf("upload %s: %w", local, err)
	}
	var open *os.File
	defer func() {
		if open != nil {
			open.Close()
		}
	}()
	var openErr error
	content := func() io.Reader {
		open, openErr = os.Open(local)
		if openErr != nil {
			return &errReader{openErr}
		}
		return open
	}
	return c.install(ctx, remote, sum, size, f, fmt.Sprintf("upload %s (sha256 %.12s) to", local, sum), content)
}

// FileSHA256 is the hex sha256 and size of a local file.
func FileSHA256(path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }
