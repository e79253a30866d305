package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// logOutput is the destination of the log: stderr, or the file of the
// logFile key. It can change at Configure, where a pre-installed plugin gets
// its config, because containerd starts such plugins with stderr on
// /dev/null.
type logOutput struct {
	mu   sync.Mutex
	path string
	file *os.File
}

func (o *logOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		return o.file.Write(p)
	}
	return os.Stderr.Write(p)
}

func (o *logOutput) Sync() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		return o.file.Sync()
	}
	return nil
}

// setFile sends the log to the file at path, appending, or to stderr when
// path is empty.
func (o *logOutput) setFile(path string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if path == o.path {
		return nil
	}
	var file *os.File
	if path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("failed to open log file: %w", err)
		}
		file = f
	}
	if o.file != nil {
		_ = o.file.Close()
	}
	o.path, o.file = path, file
	return nil
}

// newLogger returns a JSON logger at the given level that writes to out.
func newLogger(level zap.AtomicLevel, name string, out *logOutput) (*zap.Logger, error) {
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.TimeKey = "time"
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// nriLogger sends the log lines of the NRI stub to zap.
type nriLogger struct {
	log *zap.SugaredLogger
}

func (l nriLogger) Debugf(_ context.Context, format string, args ...any) {
	l.log.Debugf(format, args...)
}

func (l nriLogger) Infof(_ context.Context, format string, args ...any) {
	l.log.Infof(format, args...)
}

func (l nriLogger) Warnf(_ context.Context, format string, args ...any) {
	l.log.Warnf(format, args...)
}

func (l nriLogger) Errorf(_ context.Context, format string, args ...any) {
	l.log.Errorf(format, args...)
}
