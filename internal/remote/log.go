package remote

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/etcdkit/etcdkit/internal/fsutil"
)

// NewDebugLog opens (appending, 0600: commands can name secrets' paths) a
// debug log file and returns a logger for Options.Log and a function that
// flushes and closes it. Each line is one command on one host, a change,
// or a connection event, with a timestamp.
func NewDebugLog(path string) (*zap.Logger, func() error, error) {
	if err := fsutil.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fsutil.PrivateFile)
	if err != nil {
		return nil, nil, fmt.Errorf("open debug log: %w", err)
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeCaller = nil
	enc.StacktraceKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(f), zapcore.DebugLevel)
	log := zap.New(core)
	return log, func() error {
		_ = log.Sync()
		return f.Close()
	}, nil
}
