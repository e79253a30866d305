// Command nri-cni is a containerd NRI plugin that attaches extra CNI networks
// to CRI pods, next to the eth0 that containerd's CRI configures itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/config"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	configPath := flag.String("config", config.DefaultPath,
		"path of the YAML config file; a missing default file means the defaults")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: nri-cni [flags] [status]\n\n"+
			"Without a command, nri-cni runs as an NRI plugin in the foreground.\n"+
			"status prints the recorded attachments of the state dir.\n\nFlags:\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *showVersion {
		fmt.Println("nri-cni", version)
		return 0
	}

	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*configPath, !explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
		return 2
	}

	switch flag.Arg(0) {
	case "":
	case "status":
		if err := printStatus(os.Stdout, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(os.Stderr, "nri-cni: unknown command %q: the only command is status\n", flag.Arg(0))
		return 2
	}

	level := zap.NewAtomicLevel()
	out := &logOutput{}
	if err := out.setFile(cfg.LogFile); err != nil {
		fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
		return 2
	}
	log, err := newLogger(level, cfg.LogLevel, out)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-cni: failed to create logger: %v\n", err)
		return 2
	}
	defer func() { _ = log.Sync() }()

	ensurePath(log)

	// containerd starts a pre-installed plugin with its name, index and a
	// connection on a file descriptor in the environment. Such a plugin gets
	// its config at Configure and must not set a name or index of its own.
	preinstalled := os.Getenv(api.PluginSocketEnvVar) != ""
	log.Info("starting nri-cni", zap.String("version", version), zap.Bool("preinstalled", preinstalled),
		zap.String("configFile", *configPath), zap.Any("config", cfg))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	err = serve(ctx, cfg, logSettings{level: level, out: out}, log, preinstalled)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("nri-cni stopped", zap.Error(err))
		return 1
	}
	log.Info("nri-cni stopped")
	return 0
}
