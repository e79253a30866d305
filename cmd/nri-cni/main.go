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
	flags := flag.NewFlagSet("nri-cni", flag.ContinueOnError)
	configPath := flags.String("config", config.DefaultPath,
		"path of the YAML config file; a missing default file means the defaults")
	showVersion := flags.Bool("version", false, "print the version and exit")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage: nri-cni [--config FILE] [--version] [status [--config FILE]]\n\n"+
			"Without a command, nri-cni runs as an NRI plugin in the foreground.\n"+
			"status prints the attachments recorded in the state dir of the config.\n\nFlags:\n")
		flags.PrintDefaults()
	}
	command, err := parseArgs(flags, os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		var flagErr flagError
		if !errors.As(err, &flagErr) {
			// The flag package has printed its own errors with the usage.
			fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
		}
		return 2
	}
	if *showVersion {
		fmt.Println("nri-cni", version)
		return 0
	}

	explicit := false
	flags.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "config" })
	cfg, err := config.Load(*configPath, !explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
		return 2
	}
	if command == "status" {
		if err := printStatus(os.Stdout, cfg); err != nil {
			fmt.Fprintf(os.Stderr, "nri-cni: %v\n", err)
			return 1
		}
		return 0
	}
	return runPlugin(cfg, *configPath)
}

// parseArgs parses the flags before and after the only command, status, so
// that `nri-cni status --config FILE` works as well as the other order, and
// returns the command, or "" to run the plugin.
func parseArgs(flags *flag.FlagSet, args []string) (string, error) {
	if err := flags.Parse(args); err != nil {
		return "", flagError{err}
	}
	rest := flags.Args()
	if len(rest) == 0 {
		return "", nil
	}
	if rest[0] != "status" {
		return "", fmt.Errorf("unknown command %q: the only command is status", rest[0])
	}
	if err := flags.Parse(rest[1:]); err != nil {
		return "", flagError{err}
	}
	if flags.NArg() > 0 {
		return "", fmt.Errorf("unexpected argument %q after status", flags.Arg(0))
	}
	return "status", nil
}

// flagError is an error that the flag package has already printed.
type flagError struct{ error }

func (e flagError) Unwrap() error { return e.error }

func runPlugin(cfg *config.Config, configPath string) int {
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
		zap.String("configFile", configPath), zap.Any("config", cfg))

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
