package main

import (
	"context"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger returns a JSON logger on stderr at the given level.
func newLogger(level zap.AtomicLevel, name string) (*zap.Logger, error) {
	if err := level.UnmarshalText([]byte(name)); err != nil {
		return nil, err
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.TimeKey = "time"
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(os.Stderr), level)
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
