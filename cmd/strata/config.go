package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/strata-broker/strata/broker"
)

// envConfigFile names the config file when --config is not given, for
// containers where flags are awkward to change.
const envConfigFile = envPrefix + "CONFIG"

// Levels of the configuration layers; a higher level wins.
const (
	levelFile = iota + 1
	levelEnv
	levelFlag
	levelSet
)

// setting is one key's value as found in the layers, before parsing.
type setting struct {
	key   *configKey
	raw   string
	level int
	from  string // where the value came from, for messages
}

// serveFlags are the flags of `strata serve`. All values are strings so
// that every layer goes through the same strict parser and the same
// messages.
type serveFlags struct {
	fs     *pflag.FlagSet
	config string
	sets   []string
}

func newServeFlags() *serveFlags {
	f := &serveFlags{fs: pflag.NewFlagSet("strata serve", pflag.ContinueOnError)}
	// We print errors and usage ourselves (see main.go), once.
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.SortFlags = false
	f.fs.StringVar(&f.config, "config", "", "YAML config `file` (also "+envConfigFile+")")
	for i := range configKeys {
		k := &configKeys[i]
		if !k.flag {
			continue
		}
		f.fs.Var(&stringFlag{val: k.defaultString(), typ: k.typeName() + "-value"}, k.Name, k.Doc)
	}
	f.fs.StringArrayVar(&f.sets, "set", nil, "set any config `key=value` (repeatable), e.g. --set num.partitions=3")
	return f
}

// loadOptions turns the arguments of `strata serve`, the STRATA_*
// environment and the optional YAML config file into options.
// Precedence, highest first: --set, the other flags, STRATA_* env, the
// config file, defaults. Keys sharing a field (log.retention.hours /
// .minutes / .ms) resolve by layer first, then by the finest unit, as
// Kafka does. warnings are worth logging but not fatal (unknown STRATA_*
// variables: orchestrators such as Kubernetes inject their own).
//
// Every error names the offending key (or path); most are
// *broker.ConfigError, joined with errors.Join. pflag.ErrHelp means
// --help was asked for.
func loadOptions(args []string) (opts options, warnings []string, err error) {
	opts = defaultOptions()
	f := newServeFlags()
	if err := f.fs.Parse(args); err != nil {
		return opts, nil, err
	}
	if f.fs.NArg() > 0 {
		return opts, nil, fmt.Errorf("unexpected argument %q (flags only; see strata serve --help)", f.fs.Arg(0))
	}
	var errs []error

	var sets []setting
	for _, kv := range f.sets {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			errs = append(errs, &broker.ConfigError{Key: kv, Msg: "--set wants key=value"})
			continue
		}
		k := keyIndex[name]
		if k == nil {
			errs = append(errs, unknownKey(name, "--set"))
			continue
		}
		sets = append(sets, setting{key: k, raw: val, level: levelSet, from: "--set"})
	}

	path := f.config
	if path == "" {
		path = os.Getenv(envConfigFile)
	}
	var fileVals []setting
	if path != "" {
		var err error
		if fileVals, err = readConfigFile(path); err != nil {
			errs = append(errs, err)
		}
	}

	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		// STRATA_BOOTSTRAP, STRATA_SASL_PASSWORD, ... belong to the admin CLI, not to serve.
		if strings.HasPrefix(name, envPrefix) && name != envConfigFile && !slices.Contains(adminEnvVars, name) && envIndex[name] == nil {
			warnings = append(warnings, fmt.Sprintf("ignoring environment variable %s: no such config key", name))
		}
	}

	// viper merges the layers. Its default key delimiter is ".", which
	// would turn Kafka's dotted names into nested paths; "::" keeps them
	// flat (readConfigFile already flattened nested YAML maps).
	v := viper.NewWithOptions(viper.KeyDelimiter("::"))
	fileMap := make(map[string]any, len(fileVals))
	fileFrom := make(map[string]string, len(fileVals))
	for _, s := range fileVals {
		fileMap[s.key.Name] = s.raw
		fileFrom[s.key.Name] = s.from
	}
	if err := v.MergeConfigMap(fileMap); err != nil {
		return opts, warnings, fmt.Errorf("config file %s: %w", path, err)
	}
	setFrom := make(map[string]bool)
	for _, s := range sets {
		v.Set(s.key.Name, s.raw) // a repeated --set: the last one wins
		setFrom[s.key.Name] = true
	}
	for i := range configKeys {
		k := &configKeys[i]
		if err := v.BindEnv(k.Name, k.Env()); err != nil {
			return opts, warnings, err
		}
		if k.flag {
			if err := v.BindPFlag(k.Name, f.fs.Lookup(k.Name)); err != nil {
				return opts, warnings, err
			}
		}
	}

	// Collect what is set, with its layer, then let the highest layer
	// (and within it the finest unit) of each field win.
	winners := map[any]setting{}
	var order []any
	scratch := defaultOptions()
	for i := range configKeys {
		k := &configKeys[i]
		if !v.IsSet(k.Name) {
			continue
		}
		s := setting{key: k, raw: v.GetString(k.Name)}
		switch {
		case setFrom[k.Name]:
			s.level, s.from = levelSet, "--set"
		case k.flag && f.fs.Changed(k.Name):
			s.level, s.from = levelFlag, "--"+k.Name
		case os.Getenv(k.Env()) != "":
			s.level, s.from = levelEnv, k.Env()
		default:
			s.level, s.from = levelFile, fileFrom[k.Name]
		}
		// Parse every set value, winner or not: a bad value anywhere is
		// a mistake worth reporting.
		if err := setField(k, &scratch, s.raw); err != nil {
			errs = append(errs, &broker.ConfigError{Key: k.Name, Msg: fmt.Sprintf("%v (from %s)", err, s.from)})
			continue
		}
		id := k.field(&scratch)
		w, seen := winners[id]
		if !seen {
			order = append(order, id)
		}
		if !seen || s.level > w.level || (s.level == w.level && k.rank > w.key.rank) {
			winners[id] = s
		}
	}
	if len(errs) > 0 {
		return opts, warnings, errors.Join(errs...)
	}
	// Validate names a shared field by its millisecond key; aliasOf maps
	// that name back to the key the user wrote (log.retention.hours).
	aliasOf := map[string]string{}
	fromOf := map[string]string{}
	// The broker reports explicitly set keys as STATIC_BROKER_CONFIG in
	// DescribeConfigs; it knows them by the millisecond names.
	opts.Broker.ExplicitKeys = map[string]bool{}
	for _, id := range order {
		s := winners[id]
		fromOf[s.key.Name] = s.from
		opts.Broker.ExplicitKeys[s.key.Name] = true
		if err := setField(s.key, &opts, s.raw); err != nil {
			panic(err) // parsed above
		}
		for _, other := range configKeys {
			if other.Name != s.key.Name && other.unit <= 1 && other.field(&scratch) == id {
				aliasOf[other.Name] = s.key.Name
				opts.Broker.ExplicitKeys[other.Name] = true
			}
		}
	}

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(opts.LogLevel)) {
		errs = append(errs, &broker.ConfigError{Key: "log-level", Msg: fmt.Sprintf("want debug, info, warn or error, got %q", opts.LogLevel)})
	}
	if opts.LogFormat != "text" && opts.LogFormat != "json" {
		errs = append(errs, &broker.ConfigError{Key: "log-format", Msg: fmt.Sprintf("want text or json, got %q", opts.LogFormat)})
	}
	if err := opts.Broker.Validate(); err != nil {
		for _, e := range flatten(err) {
			var ce *broker.ConfigError
			if errors.As(e, &ce) {
				key, msg := ce.Key, ce.Msg
				if alias, ok := aliasOf[key]; ok {
					key, msg = alias, fmt.Sprintf("as %s: %s", key, msg)
				}
				if from, ok := fromOf[key]; ok {
					msg += " (from " + from + ")"
				}
				e = &broker.ConfigError{Key: key, Msg: msg}
			}
			errs = append(errs, e)
		}
	}
	return opts, warnings, errors.Join(errs...)
}

// flatten undoes errors.Join (one level is all Validate makes).
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func unknownKey(name, where string) error {
	msg := "unknown config key (in " + where + ")"
	if s := closestKey(name); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return &broker.ConfigError{Key: name, Msg: msg}
}

// setField parses raw strictly for k's field and stores it in o.
func setField(k *configKey, o *options, raw string) error {
	raw = strings.TrimSpace(raw)
	switch p := k.field(o).(type) {
	case *int16:
		n, err := parseInt(raw, 16)
		if err != nil {
			return err
		}
		*p = int16(n)
	case *int32:
		n, err := parseInt(raw, 32)
		if err != nil {
			return err
		}
		*p = int32(n)
	case *int64:
		n, err := parseInt(raw, 64)
		if err != nil {
			return err
		}
		if k.unit > 1 && !(n == -1 && k.minusOneUnlimited) {
			if n > math.MaxInt64/k.unit || n < math.MinInt64/k.unit {
				return fmt.Errorf("%q is out of range", raw)
			}
			n *= k.unit
		}
		*p = n
	case *bool:
		switch strings.ToLower(raw) {
		case "true":
			*p = true
		case "false":
			*p = false
		default:
			return fmt.Errorf("%q is not true or false", raw)
		}
	case *string:
		*p = raw
	default:
		panic(fmt.Sprintf("config key %s: unsupported field type %T", k.Name, p))
	}
	return nil
}

func parseInt(raw string, bits int) (int64, error) {
	n, err := strconv.ParseInt(raw, 10, bits)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("%q is out of range for a %d-bit integer", raw, bits)
	}
	return 0, fmt.Errorf("%q is not a whole number", raw)
}

// readConfigFile reads a YAML mapping of config keys. Kafka's dotted names
// may be written flat (`log.retention.hours: 1`) or nested
// (`log: {retention: {hours: 1}}`); both flatten to the dotted key.
func readConfigFile(path string) ([]setting, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &broker.ConfigError{Key: "config", Msg: err.Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &broker.ConfigError{Key: "config", Msg: fmt.Sprintf("%s: %v", path, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &broker.ConfigError{Key: "config", Msg: fmt.Sprintf("%s: want a mapping of config keys at the top", path)}
	}
	var out []setting
	seen := map[string]int{}
	var errs []error
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			name := kn.Value
			if prefix != "" {
				name = prefix + "." + name
			}
			where := fmt.Sprintf("%s line %d", path, kn.Line)
			if vn.Kind == yaml.AliasNode && vn.Alias != nil {
				vn = vn.Alias
			}
			switch {
			case kn.Kind != yaml.ScalarNode:
				errs = append(errs, &broker.ConfigError{Key: "config", Msg: where + ": keys must be plain names"})
			case vn.Kind == yaml.MappingNode:
				walk(name, vn)
			case keyIndex[name] == nil:
				errs = append(errs, unknownKey(name, where))
			case vn.Kind != yaml.ScalarNode:
				errs = append(errs, &broker.ConfigError{Key: name, Msg: where + ": want a single value"})
			case vn.Tag == "!!null":
				errs = append(errs, &broker.ConfigError{Key: name, Msg: where + ": no value"})
			case seen[name] != 0:
				errs = append(errs, &broker.ConfigError{Key: name, Msg: fmt.Sprintf("%s: already set on line %d", where, seen[name])})
			default:
				seen[name] = kn.Line
				out = append(out, setting{key: keyIndex[name], raw: vn.Value, level: levelFile, from: where})
			}
		}
	}
	walk("", root)
	return out, errors.Join(errs...)
}

// newLogger builds the process logger; level and format were validated.
func newLogger(o options, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(o.LogLevel))
	ho := &slog.HandlerOptions{Level: lvl}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

// stringFlag is a string flag that names its value type in --help; the
// value is parsed later, with every other layer, by setField. Its Type
// must not be one viper knows ("int", "bool"): viper would convert the
// value itself and turn "one" into 0 without a word.
type stringFlag struct{ val, typ string }

func (f *stringFlag) String() string     { return f.val }
func (f *stringFlag) Set(v string) error { f.val = v; return nil }
func (f *stringFlag) Type() string       { return f.typ }
