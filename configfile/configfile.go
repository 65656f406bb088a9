// Package configfile loads the tool's configuration (config.Config) from, in increasing
// precedence, the defaults, a YAML file, OFA_ environment variables and command-line flags,
// strictly: unknown or upper-case keys, fractional numbers for whole-number keys, scalars
// for lists and words for booleans are errors naming the key. It also stores a
// configuration in the same YAML form, so that a stored configuration (a resume file's,
// a run's config.yaml) loads back exactly and is checked as strictly as a file.
package configfile

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/data"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration.
type Config = config.Config

// errConfig is wrapped by every configuration error.
var errConfig = config.ErrConfig

// MaxBytes bounds a configuration file, checked before it is read.
const MaxBytes = 1 << 20

// Loader builds a Config from, in increasing precedence: the defaults, a YAML file,
// environment variables (OFA_ plus the upper-cased key with dots as underscores, e.g.
// OFA_TRAIN_LR) and flags (bound by key). A stored configuration replaces file,
// environment and flags.
type Loader struct {
	// File is a YAML configuration file (at most MaxBytes).
	File string
	// Flags maps configuration keys to the flags that set them (only flags the user set).
	Flags map[string]*pflag.Flag
	// Stored is a configuration as Store wrote it, loaded instead of file, environment and
	// flags; Where names it in errors.
	Stored []byte
	Where  string
	// Base is a stored configuration (a model's, a run's config.yaml) that stands in for
	// the defaults: file, environment and flags still apply over it. BaseWhere names it in
	// errors.
	Base      []byte
	BaseWhere string
}

// Load builds and validates the configuration.
func (l Loader) Load() (Config, error) {
	v := viper.New()
	def := config.Default()
	known := knownKeys()
	defaults := map[string]any{}
	leafValues(reflect.ValueOf(def), "", defaults, false)
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	where := "configuration"
	type document struct {
		doc   []byte
		where string
	}
	var docs []document
	switch {
	case l.Stored != nil:
		docs = append(docs, document{l.Stored, l.Where})
	default:
		if l.Base != nil {
			docs = append(docs, document{l.Base, l.BaseWhere})
		}
		if l.File != "" {
			b, err := data.ReadFileLimited(l.File, MaxBytes)
			if err != nil {
				return def, fmt.Errorf("%w: %w", errConfig, err)
			}
			docs = append(docs, document{b, l.File})
		}
	}
	v.SetConfigType("yaml")
	for i, d := range docs {
		if err := checkDocument(d.doc, d.where, known); err != nil {
			return def, err
		}
		read := v.MergeConfig
		if i == 0 {
			read = v.ReadConfig
		}
		if err := read(bytes.NewReader(d.doc)); err != nil {
			return def, fmt.Errorf("%w: %s: %v", errConfig, d.where, err)
		}
		where = d.where
	}
	if l.Stored == nil && l.File != "" {
		// the user's file alone (over the defaults); a stored base was checked when written
		d := docs[len(docs)-1]
		if err := checkFileAlone(d.doc, d.where, defaults); err != nil {
			return def, err
		}
	}
	if l.Stored == nil {
		v.SetEnvPrefix("OFA")
		v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
		v.AutomaticEnv()
		if err := checkEnv(known); err != nil {
			return def, err
		}
		for key, f := range l.Flags {
			if !known[key] {
				panic("configfile: flag bound to unknown key " + key)
			}
			if err := v.BindPFlag(key, f); err != nil {
				return def, err
			}
		}
	}
	var c Config
	if err := v.UnmarshalExact(&c, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = strictHook
	}); err != nil {
		return def, fmt.Errorf("%w: %s: %s", errConfig, where, decodeErrorText(err))
	}
	return c, c.Validate()
}

// checkFileAlone checks a configuration file on its own, before environment variables and
// flags override it: a bad value in the file is an error even where a flag hides it
// (issue 29: train.steps -5 was accepted beside --steps), and a quoted string is not
// read as a number or a boolean (lr: '1e-3' is a string in YAML; flags and environment
// variables, which are always strings, are still parsed).
func checkFileAlone(doc []byte, where string, defaults map[string]any) error {
	v := viper.New()
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(doc)); err != nil {
		return fmt.Errorf("%w: %s: %v", errConfig, where, err)
	}
	var c Config
	if err := v.UnmarshalExact(&c, func(dc *mapstructure.DecoderConfig) {
		dc.WeaklyTypedInput = false
		dc.DecodeHook = fileHook
	}); err != nil {
		return fmt.Errorf("%w: %s: %s", errConfig, where, decodeErrorText(err))
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%s (in the file, before flags and environment): %w", where, err)
	}
	return nil
}

// fileHook is strictHook for values read from YAML: a quoted string is refused where a
// number or a boolean is wanted.
func fileHook(from, to reflect.Type, value any) (any, error) {
	if s, ok := value.(string); ok {
		switch to.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
			reflect.Float32, reflect.Float64:
			if to != reflect.TypeOf(time.Duration(0)) {
				return nil, fmt.Errorf("got the string %q, want a number (write it without quotes)", s)
			}
		case reflect.Bool:
			return nil, fmt.Errorf("got the string %q, want true or false (without quotes)", s)
		}
	}
	return strictHook(from, to, value)
}

// decodeErrorText puts mapstructure's multi-line error on one line: "'train.epochs' got
// 1.5, want a whole number; ...".
func decodeErrorText(err error) string {
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "decoding failed due to") {
			continue
		}
		parts = append(parts, strings.TrimPrefix(line, "* "))
	}
	return strings.Join(parts, "; ")
}

// Store is the configuration as the tool stores it (resume files, model provenance,
// config.yaml of a run): YAML with every key, loadable as a configuration file.
func Store(c Config) []byte {
	flat := map[string]any{}
	leafValues(reflect.ValueOf(c), "", flat, true)
	nested := map[string]any{}
	for k, v := range flat {
		parts := strings.Split(k, ".")
		m := nested
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		m[parts[len(parts)-1]] = v
	}
	b, err := yaml.Marshal(nested)
	if err != nil {
		panic("configfile: configuration does not marshal: " + err.Error())
	}
	return b
}

// knownKeys are the configuration's leaf keys.
func knownKeys() map[string]bool {
	known := map[string]bool{}
	for _, k := range leafKeys(reflect.TypeOf(config.Default()), "") {
		known[k] = true
	}
	return known
}

// checkDocument refuses keys that are unknown, not lower case, or a section given a value.
func checkDocument(doc []byte, where string, known map[string]bool) error {
	var root map[string]any
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return fmt.Errorf("%w: %s: %v", errConfig, where, err)
	}
	sections := map[string]bool{}
	for k := range known {
		for i := range k {
			if k[i] == '.' {
				sections[k[:i]] = true
			}
		}
	}
	var walk func(m map[string]any, prefix string) error
	walk = func(m map[string]any, prefix string) error {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			key := prefix + k
			if k != strings.ToLower(k) {
				return fmt.Errorf("%w: %s: key %q: keys are lower case (%q)", errConfig, where, key, strings.ToLower(key))
			}
			switch sub, isMap := m[k].(map[string]any); {
			case known[key]:
			case sections[key] && isMap:
				if err := walk(sub, key+"."); err != nil {
					return err
				}
			case sections[key]:
				return fmt.Errorf("%w: %s: key %q is a section: want keys under it, got %v", errConfig, where, key, m[k])
			case isMap:
				// report the first key under an unknown section, with the closest known key
				for leaf := sub; ; {
					ks := make([]string, 0, len(leaf))
					for k := range leaf {
						ks = append(ks, k)
					}
					if len(ks) == 0 {
						break
					}
					sort.Strings(ks)
					key += "." + ks[0]
					next, ok := leaf[ks[0]].(map[string]any)
					if !ok {
						break
					}
					leaf = next
				}
				return fmt.Errorf("%w: %s: unknown key %q%s", errConfig, where, key, suggest(key, known))
			default:
				return fmt.Errorf("%w: %s: unknown key %q%s", errConfig, where, key, suggest(key, known))
			}
		}
		return nil
	}
	return walk(root, "")
}

// strictHook converts without guessing: a string (environment variables) is parsed
// strictly for the target type; a fractional number is not a whole number; a word is
// not a boolean.
func strictHook(from, to reflect.Type, value any) (any, error) {
	if to == reflect.TypeOf(time.Duration(0)) {
		if s, ok := value.(string); ok {
			return time.ParseDuration(s)
		}
		return value, nil
	}
	s, isString := value.(string)
	switch to.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if isString {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("got %q, want a whole number", s)
			}
			return n, nil
		}
		if f, ok := value.(float64); ok && (f != math.Trunc(f) || math.IsInf(f, 0)) {
			return nil, fmt.Errorf("got %v, want a whole number", f)
		}
		if f, ok := value.(float32); ok && float64(f) != math.Trunc(float64(f)) {
			return nil, fmt.Errorf("got %v, want a whole number", f)
		}
	case reflect.Float32, reflect.Float64:
		if isString {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			if err != nil {
				return nil, fmt.Errorf("got %q, want a number", s)
			}
			return f, nil
		}
	case reflect.Bool:
		if isString {
			switch strings.TrimSpace(s) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
			return nil, fmt.Errorf("got %q, want true or false", s)
		}
	case reflect.Slice:
		if isString && from.Kind() == reflect.String {
			var out []any
			for _, f := range strings.Split(s, ",") {
				if f = strings.TrimSpace(f); f != "" {
					out = append(out, f)
				}
			}
			return out, nil
		}
	}
	return value, nil
}

// leafKeys lists the configuration keys of a struct type (dotted mapstructure names);
// slices are leaves, squashed structs add their keys at the same level.
func leafKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, squash := tagOf(f)
		if name == "-" || (name == "" && !squash) {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		switch {
		case squash:
			keys = append(keys, leafKeys(ft, prefix)...)
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)):
			keys = append(keys, leafKeys(ft, prefix+name+".")...)
		default:
			keys = append(keys, prefix+name)
		}
	}
	return keys
}

func tagOf(f reflect.StructField) (name string, squash bool) {
	parts := strings.Split(f.Tag.Get("mapstructure"), ",")
	return parts[0], slices.Contains(parts[1:], "squash")
}

// leafValues maps each leaf key of v to its value: for viper defaults (optional sections,
// nil pointers, have none), or with pointers to record a whole configuration.
func leafValues(v reflect.Value, prefix string, out map[string]any, pointers bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, squash := tagOf(f)
		if name == "-" || (name == "" && !squash) {
			continue
		}
		fv := v.Field(i)
		switch {
		case squash:
			leafValues(fv, prefix, out, pointers)
		case f.Type.Kind() == reflect.Pointer:
			if pointers && !fv.IsNil() && f.Type.Elem().Kind() == reflect.Struct {
				leafValues(fv.Elem(), prefix+name+".", out, pointers)
			}
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)):
			leafValues(fv, prefix+name+".", out, pointers)
		default:
			out[prefix+name] = fv.Interface()
		}
	}
}

// checkEnv rejects OFA_ variables that name no key, so a typo is not silently ignored.
func checkEnv(known map[string]bool) error {
	names := map[string]bool{}
	for k := range known {
		names["OFA_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "OFA_") && !names[name] {
			return fmt.Errorf("%w: environment variable %s names no configuration key", errConfig, name)
		}
	}
	return nil
}

// suggest proposes the closest known key for a typo.
func suggest(key string, known map[string]bool) string {
	best, bestD := "", 4
	for k := range known {
		if d := editDistance(key, k); d < bestD || (d == bestD && k < best) {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// SameStored reports whether a stored configuration (a run's config.yaml or a resume
// file's, as Store wrote it, perhaps by an older version of the tool) is the
// configuration cur (Store's bytes of this version). An older version stored fewer keys;
// the stored document is loaded as this version loads it, with the keys it lacks at
// their defaults (a key added later defaults to the behaviour before it existed), and
// the two are compared as this version stores them. A stored document that does not
// load is not the same.
func SameStored(stored, cur []byte) bool {
	if bytes.Equal(stored, cur) {
		return true
	}
	c, err := Loader{Stored: stored, Where: "stored configuration"}.Load()
	return err == nil && bytes.Equal(Store(c), cur)
}
