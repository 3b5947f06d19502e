package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/broker"
)

// Exit codes: 2 is a usage or configuration mistake the operator must fix
// (unknown key, bad value, unusable data dir); 1 is a failure at run time.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "topics", "groups", "cluster", "tiering", "users", "acls", "quotas":
		return adminMain(args[0], args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "--help", "-help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "strata: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func serve(args []string, stdout, stderr io.Writer) int {
	opts, warnings, err := loadOptions(args)
	if errors.Is(err, pflag.ErrHelp) {
		serveUsage(stdout)
		return exitOK
	}
	if err != nil {
		printErrors(stderr, err)
		return exitUsage
	}
	log := newLogger(opts, stderr)
	for _, w := range warnings {
		log.Warn(w)
	}
	opts.Broker.Logger = log

	srv, err := broker.New(opts.Broker)
	if err != nil {
		printErrors(stderr, err)
		if _, ok := errors.AsType[*broker.ConfigError](err); ok {
			return exitUsage
		}
		return exitFailed
	}
	addr := "none (controller only)"
	if a := srv.Addr(); a != nil {
		addr = a.String()
	}
	log.Info("strata serving", "version", version, "addr", addr, "data-dir", opts.Broker.DataDir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// After the first signal starts the shutdown, a second one gets the
	// default behaviour and kills the process at once.
	context.AfterFunc(ctx, stop)

	if err := srv.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("strata stopped", "err", err)
		return exitFailed
	}
	log.Info("strata stopped")
	return exitOK
}

// printErrors prints one line per joined error so each key gets its own.
func printErrors(w io.Writer, err error) {
	for _, e := range flatten(err) {
		fmt.Fprintf(w, "strata: %v\n", e)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Strata is a Kafka-compatible broker.

Usage:
  strata serve [flags]   run a broker (strata serve --help lists flags and keys)
  strata version         print the version
`)
	adminUsage(w)
}

func serveUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: strata serve [flags]\n\nFlags:\n%s\n", newServeFlags().fs.FlagUsages())
	fmt.Fprintf(w, "Config keys (for --config FILE, --set key=value and %s<KEY> env vars):\n", envPrefix)
	for _, k := range configKeys {
		fmt.Fprintf(w, "  %-42s %-7s default %q\n", k.Name, k.typeName(), k.defaultString())
	}
}
