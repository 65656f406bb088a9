package configfile

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ofa-go/ofa/config"
)

// Key is one configuration key as the reference documents it: its name, type and default
// come from the configuration types (config.Config and config.Default), its meaning from
// the doc comment of the Go field behind it (see FieldDocs).
type Key struct {
	// Key is the dotted name ("train.lr").
	Key string
	// Type is the value's kind in YAML terms: "whole number", "number", "true/false",
	// "text", "duration", "list of text", ...
	Type string
	// Default is the built-in value, written as YAML would show it.
	Default string
	// Pkg, Struct and Field identify the Go field: its package's import path, the struct
	// type's name and the field's name (FieldDocs is keyed by them).
	Pkg, Struct, Field string
	// Siblings are the other fields of the same struct, Go name -> key, so that a doc
	// comment's mention of a sibling field reads as its key.
	Siblings map[string]string
}

// Keys lists every configuration key in the order of the configuration types' fields, with
// its type and built-in default.
func Keys() []Key {
	var out []Key
	keysOf(reflect.ValueOf(config.Default()), reflect.TypeOf(config.Default()), "", &out)
	return out
}

// Default is the built-in default of key, written as the reference writes it; ok is false
// for an unknown key.
func Default(key string) (value string, ok bool) {
	for _, k := range Keys() {
		if k.Key == key {
			return k.Default, true
		}
	}
	return "", false
}

var durationType = reflect.TypeOf(time.Duration(0))

func keysOf(v reflect.Value, t reflect.Type, prefix string, out *[]Key) {
	siblings := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name, squash := tagOf(f); name != "" && name != "-" && !squash {
			siblings[f.Name] = prefix + name
		}
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, squash := tagOf(f)
		if name == "-" || (name == "" && !squash) {
			continue
		}
		ft, fv := f.Type, reflect.Value{}
		if v.IsValid() {
			fv = v.Field(i)
		}
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
			if fv.IsValid() && !fv.IsNil() {
				fv = fv.Elem()
			} else {
				fv = reflect.Value{}
			}
		}
		switch {
		case squash:
			keysOf(fv, ft, prefix, out)
		case ft.Kind() == reflect.Struct && ft != durationType:
			keysOf(fv, ft, prefix+name+".", out)
		default:
			def := ""
			if fv.IsValid() {
				def = formatDefault(fv)
			}
			*out = append(*out, Key{Key: prefix + name, Type: typeName(ft), Default: def,
				Pkg: t.PkgPath(), Struct: t.Name(), Field: f.Name, Siblings: siblings})
		}
	}
}

// typeName names a field's type as a configuration file's author sees it.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "true/false"
	case reflect.String:
		return "text"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "list of maps"
		}
		switch e := typeName(t.Elem()); e {
		case "text":
			return "list of text"
		default:
			return "list of " + e + "s"
		}
	case reflect.Map:
		return "map"
	}
	return t.Kind().String()
}

// formatDefault writes a default value: numbers as Go prints them, text quoted when
// empty, lists in YAML flow style.
func formatDefault(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = formatDefault(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Struct:
		var parts []string
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if name, _ := tagOf(t.Field(i)); name != "" && name != "-" {
				parts = append(parts, name+": "+formatDefault(v.Field(i)))
			}
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

// FieldDocs reads the doc comments of the configuration's Go fields from the module's
// source: root is the module's directory and module its import path. The result maps
// "<import path>.<Struct>.<Field>" to the comment, on one line.
func FieldDocs(root, module string) (map[string]string, error) {
	dirs := map[string]bool{}
	for _, k := range Keys() {
		dirs[k.Pkg] = true
	}
	docs := map[string]string{}
	for pkg := range dirs {
		rel, ok := strings.CutPrefix(pkg, module)
		if !ok {
			return nil, fmt.Errorf("configfile: package %s is outside module %s", pkg, module)
		}
		dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(rel, "/")))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		fset := token.NewFileSet()
		for _, e := range entries {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.ParseComments)
			if err != nil {
				return nil, err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				ts, ok := n.(*ast.TypeSpec)
				if !ok {
					return true
				}
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					return false
				}
				group := "" // a comment may document the fields after it: "WindowMS and HopMS are ..."
				for _, fl := range st.Fields.List {
					text := strings.Join(strings.Fields(fl.Doc.Text()+" "+fl.Comment.Text()), " ")
					for _, n := range fl.Names {
						switch {
						case text != "":
							group = text
							docs[pkg+"."+ts.Name.Name+"."+n.Name] = text
						case regexp.MustCompile(`\b` + n.Name + `\b`).MatchString(group):
							docs[pkg+"."+ts.Name.Name+"."+n.Name] = group
						}
					}
				}
				return false
			})
		}
	}
	return docs, nil
}

// Flag is one command-line flag as the reference documents it.
type Flag struct {
	// Command is the command's name ("" for the flags every command takes).
	Command string
	// Name, Type, Default and Usage are as the flag set holds them.
	Name, Type, Default, Usage string
	// Key is the configuration key the flag sets, if any; then the flag's own default is
	// unused and the key's applies.
	Key string
}

// ErrUndocumented is wrapped by Reference's errors about a key or flag without a meaning.
var ErrUndocumented = errors.New("undocumented")

// goIdent matches an exported Go identifier, to name sibling fields by their keys.
var goIdent = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*\b`)

// Reference writes the configuration and command-line reference (docs/CONFIG.md) in
// Markdown: a table per configuration section (key, type, default, meaning) and a table per
// command (flag, type, default, meaning). A key whose field has no doc comment, a flag
// without usage text and a flag bound to an unknown key are errors (ErrUndocumented).
func Reference(docs map[string]string, flags []Flag) (string, error) {
	keys := Keys()
	known := map[string]Key{}
	for _, k := range keys {
		known[k.Key] = k
	}
	var b strings.Builder
	b.WriteString(referenceHeader)
	section := ""
	var missing []string
	for _, k := range keys {
		sec, _, nested := strings.Cut(k.Key, ".")
		if !nested {
			sec = "top level"
		}
		if sec != section {
			section = sec
			fmt.Fprintf(&b, "\n### %s\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n", sectionTitle(sec))
		}
		doc := docs[k.Pkg+"."+k.Struct+"."+k.Field]
		if doc == "" {
			missing = append(missing, fmt.Sprintf("key %s (field %s.%s of %s)", k.Key, k.Struct, k.Field, k.Pkg))
			continue
		}
		doc = goIdent.ReplaceAllStringFunc(doc, func(id string) string {
			if key, ok := k.Siblings[id]; ok && strings.ToUpper(id) != id { // not an acronym such as MLP
				return "`" + key + "`"
			}
			return id
		})
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Key, k.Type, cell("`"+k.Default+"`"), cell(doc))
	}
	b.WriteString("\n## Command-line flags\n\n" + flagsHeader)
	command := "\x00"
	for _, f := range flags {
		if f.Command != command {
			command = f.Command
			title := "every command"
			if command != "" {
				title = "`ofa " + command + "`"
			}
			fmt.Fprintf(&b, "\n### %s\n\n| flag | type | default | meaning |\n| --- | --- | --- | --- |\n", title)
		}
		def := "`" + f.Default + "`"
		if f.Default == "" || f.Default == "[]" {
			def = ""
		}
		if f.Key != "" {
			k, ok := known[f.Key]
			if !ok {
				return "", fmt.Errorf("%w: flag --%s of %q sets unknown configuration key %s", ErrUndocumented, f.Name, f.Command, f.Key)
			}
			def = "`" + k.Default + "` (`" + f.Key + "`)"
		}
		if strings.TrimSpace(f.Usage) == "" {
			missing = append(missing, fmt.Sprintf("flag --%s of %q", f.Name, f.Command))
			continue
		}
		fmt.Fprintf(&b, "| `--%s` | %s | %s | %s |\n", f.Name, f.Type, cell(def), cell(f.Usage))
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s", ErrUndocumented, strings.Join(missing, "; "))
	}
	return b.String(), nil
}

// SortFlags orders flags by command (the flags of every command first), then by name.
func SortFlags(flags []Flag) {
	sort.SliceStable(flags, func(i, j int) bool {
		if flags[i].Command != flags[j].Command {
			return flags[i].Command < flags[j].Command
		}
		return flags[i].Name < flags[j].Name
	})
}

func sectionTitle(sec string) string {
	if sec == "top level" {
		return "Top level"
	}
	return "`" + sec + "`"
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

const referenceHeader = `# Configuration and command-line reference

Generated from the code (the configuration types, their doc comments and defaults, and the
commands' flags) by ` + "`go generate ./cmd/ofa`" + `; a test fails when this file differs from
what the code generates, so every key and flag below, and its default, is the code's.

## Configuration keys

Values come from, in increasing precedence: the defaults below, the YAML file given by
` + "`--config`" + `, environment variables ` + "`OFA_<KEY>`" + ` (the key upper-cased with dots
as underscores, e.g. ` + "`OFA_TRAIN_LR=0.001`" + `) and flags. Decoding is strict and every error
names the key: an unknown or upper-case key, an unknown ` + "`OFA_`" + ` variable, an
out-of-range value, a fraction for a whole-number key, a single value for a list and anything
but ` + "`true`/`false`" + ` for a boolean are refused. A YAML file needs only the keys it
changes, nested by section:

` + "```yaml" + `
train:
  epochs: 20
  lr: 0.001
run:
  budgets: [2x, 4x]
` + "```" + `

The ` + "`finetune`" + ` section has the same keys as ` + "`train`" + ` (with its own defaults).
`

const flagsHeader = `A flag that sets a configuration key shows the key's default and name: the flag overrides
the file and the environment only when given.
`
