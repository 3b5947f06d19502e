package main

// The admin CLI: `strata topics|groups|cluster|tiering|users|acls|quotas
// ...` talks to a running broker over the Kafka protocol (franz-go's
// kadm), for operators without a Kafka client at hand, over any listener:
// the connection flags (admin_conn.go) add TLS and SASL.
//
// Every command computes a plain result value first and renders it second,
// either as an aligned table (the default, for people) or as JSON
// (--output json, for scripts), so the rendering is testable without a
// broker. Exit codes follow serve's: 2 for a usage mistake, 1 for a broker
// that cannot be reached or answers with an error.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	envBootstrap     = envPrefix + "BOOTSTRAP"
	defaultBootstrap = "127.0.0.1:9092"
)

// adminResult is what a command prints: a table for people, or itself
// marshalled as JSON.
type adminResult interface {
	writeTable(w io.Writer)
}

// adminCommand is one leaf command such as `topics describe`. setup
// registers the command's own flags and returns the function that runs it
// with the flag values bound.
type adminCommand struct {
	args []string // positional argument names, all required
	// more names further positional arguments, which may repeat; at
	// least moreMin of them are required.
	more    string
	moreMin int
	help    string
	setup   func(fs *pflag.FlagSet) adminRun
}

// synopsis is the command's arguments as usage shows them.
func (c adminCommand) synopsis() string {
	parts := slices.Clone(c.args)
	switch {
	case c.more != "" && c.moreMin > 0:
		parts = append(parts, c.more+"...")
	case c.more != "":
		parts = append(parts, "["+c.more+"...]")
	}
	return strings.Join(parts, " ")
}

// checkArgs checks the number of positional arguments.
func (c adminCommand) checkArgs(got int) error {
	switch {
	case c.more == "" && got != len(c.args):
		return usagef("want %d argument(s) (%s), got %d", len(c.args), strings.Join(c.args, " "), got)
	case c.more != "" && got < len(c.args)+c.moreMin:
		return usagef("want at least %d argument(s) (%s), got %d", len(c.args)+c.moreMin, c.synopsis(), got)
	}
	return nil
}

type adminRun func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error)

// adminGroups lists the command groups in the order usage shows them.
var adminGroups = []string{"topics", "groups", "cluster", "tiering", "users", "acls", "quotas"}

// adminCommands maps "group" -> "verb" -> command.
var adminCommands = map[string]map[string]adminCommand{
	"topics":  topicCommands,
	"groups":  groupCommands,
	"cluster": clusterCommands,
	"tiering": tieringCommands,
	"users":   userCommands,
	"acls":    aclCommands,
	"quotas":  quotaCommands,
}

// usageError is a mistake on the command line (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// adminMain runs `strata GROUP VERB ...`; args start after GROUP.
func adminMain(group string, args []string, stdout, stderr io.Writer) int {
	cmds := adminCommands[group]
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		w := stderr
		code := exitUsage
		if len(args) > 0 {
			w, code = stdout, exitOK
		}
		adminGroupUsage(w, group)
		return code
	}
	verb := args[0]
	cmd, ok := cmds[verb]
	if !ok {
		fmt.Fprintf(stderr, "strata %s: unknown command %q\n\n", group, verb)
		adminGroupUsage(stderr, group)
		return exitUsage
	}
	name := "strata " + group + " " + verb

	// The command's own flags and the global ones are separate sets so
	// that --help can show them apart; fs parses both.
	own := pflag.NewFlagSet(name, pflag.ContinueOnError)
	global := pflag.NewFlagSet(name, pflag.ContinueOnError)
	bootstrap := global.String("bootstrap", "", "broker `HOST:PORT`[,HOST:PORT...] (env "+envBootstrap+", default "+defaultBootstrap+")")
	output := global.StringP("output", "o", "table", "output format: table or json")
	timeout := global.Duration("timeout", 30*time.Second, "give up after this long")
	conn := addConnFlags(global)
	run := cmd.setup(own)
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.AddFlagSet(own)
	fs.AddFlagSet(global)
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s", name)
		if syn := cmd.synopsis(); syn != "" {
			fmt.Fprintf(w, " %s", syn)
		}
		fmt.Fprintf(w, " [flags]\n\n%s\n\n", cmd.help)
		if own.HasFlags() {
			fmt.Fprintf(w, "Flags:\n%s\n", own.FlagUsages())
		}
		fmt.Fprintf(w, "Global flags:\n%s", global.FlagUsages())
	}

	err := fs.Parse(args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		printUsage(stdout)
		return exitOK
	}
	if err == nil {
		err = cmd.checkArgs(len(fs.Args()))
	}
	if err == nil && *output != "table" && *output != "json" {
		err = usagef("--output must be table or json, not %q", *output)
	}
	var cc connConfig
	if err == nil {
		cc, err = conn.resolve(fs, os.Getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		printUsage(stderr)
		return exitUsage
	}

	addr := *bootstrap
	if addr == "" {
		addr = os.Getenv(envBootstrap)
	}
	if addr == "" {
		addr = defaultBootstrap
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(addr, ",")...),
		kgo.ClientID("strata-cli"),
		kgo.DialTimeout(5 * time.Second),
		// One process, one answer: cached metadata would only hide the
		// effect of an earlier command of the same run.
		kgo.MetadataMinAge(10 * time.Millisecond),
	}, cc.opts()...)...)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitUsage
	}
	adm := kadm.NewClient(cl)
	defer adm.Close()

	res, err := run(withKgoClient(ctx, cl), adm, fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(cc.explain(err)))
		if _, ok := errors.AsType[usageError](err); ok {
			return exitUsage
		}
		return exitFailed
	}
	if err := writeResult(stdout, res, *output); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitFailed
	}
	return exitOK
}

// oneLine keeps an error to the one line scripts and logs expect: broker
// messages and joined errors may hold newlines.
func oneLine(err error) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}

// brokerErr explains a failed request; a deadline usually means nothing
// answered at the bootstrap address.
func brokerErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w (is a broker listening at the bootstrap address?)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// kafkaErr joins a per-item Kafka error with the broker's message, if any.
func kafkaErr(what string, err error, msg string) error {
	if msg != "" && !strings.Contains(err.Error(), msg) {
		return fmt.Errorf("%s: %w: %s", what, err, msg)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func writeResult(w io.Writer, res adminResult, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	res.writeTable(w)
	return nil
}

// table writes aligned columns; rows are written as given. An ERROR
// column in which no row has an error is left out.
func table(w io.Writer, header []string, rows [][]string) {
	if i := slices.Index(header, "ERROR"); i >= 0 && !slices.ContainsFunc(rows, func(r []string) bool { return r[i] != "" }) {
		header = slices.Delete(slices.Clone(header), i, i+1)
		for j, r := range rows {
			rows[j] = slices.Delete(slices.Clone(r), i, i+1)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func itoa[T ~int | ~int16 | ~int32 | ~int64](v T) string { return strconv.FormatInt(int64(v), 10) }

// offsetString shows -1 (unknown, or nothing there) as "-".
func offsetString(v int64) string {
	if v < 0 {
		return "-"
	}
	return itoa(v)
}

func int32List(v []int32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = itoa(x)
	}
	return strings.Join(s, ",")
}

// parseKVs parses repeated k=v flags.
func parseKVs(flag string, kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func adminUsage(w io.Writer) {
	fmt.Fprint(w, `  strata topics list|describe|create|delete|alter
  strata groups list|describe|reset-offsets|delete
  strata cluster describe|quorum|add-voter|remove-voter
  strata tiering status TOPIC
  strata users list|set|delete
  strata acls list|create|delete
  strata quotas list|set|remove
                         admin commands against a running broker
                         (--bootstrap host:port, --output table|json; --help on each)
                         over TLS and SASL with --tls, --tls-ca FILE, --tls-cert FILE,
                         --sasl-mechanism PLAIN|SCRAM-SHA-256|SCRAM-SHA-512, --sasl-user U
                         and the password in STRATA_SASL_PASSWORD
`)
}

func adminGroupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: strata %s COMMAND [args] [flags]\n\nCommands:\n", group)
	cmds := adminCommands[group]
	for _, verb := range sortedKeys(cmds) {
		c := cmds[verb]
		fmt.Fprintf(w, "  %-40s %s\n", strings.TrimSpace(verb+" "+c.synopsis()), c.help)
	}
	fmt.Fprintf(w, "\nGlobal flags: --bootstrap host:port (env %s, default %s), --output table|json, --timeout DURATION\n",
		envBootstrap, defaultBootstrap)
	fmt.Fprintf(w, "Connection flags: --tls, --tls-ca FILE, --tls-cert FILE, --tls-key FILE, --tls-server-name NAME,\n"+
		"  --sasl-mechanism %s, --sasl-user USER, password in %s\n"+
		"  (each also from %s*; see COMMAND --help)\n", strings.Join(saslMechanisms, "|"), envSASLPassword, envPrefix)
}
