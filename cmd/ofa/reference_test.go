package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/configfile"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite docs/CONFIG.md from the code")

// referenceFile is the configuration and command-line reference, relative to this package.
var referenceFile = filepath.Join("..", "..", "docs", "CONFIG.md")

// commandFlags lists every flag of the command tree: the flags every command takes, then
// each command's own, for the reference.
func commandFlags(root *cobra.Command) []configfile.Flag {
	var out []configfile.Flag
	add := func(command string, fs *pflag.FlagSet) {
		fs.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			key := ""
			if k := f.Annotations[annotationKey]; len(k) == 1 {
				key = k[0]
			}
			typ := f.Value.Type()
			if typ == "bool" {
				typ = "true/false"
			}
			out = append(out, configfile.Flag{Command: command, Name: f.Name, Type: typ, Default: f.DefValue, Usage: f.Usage, Key: key})
		})
	}
	add("", root.PersistentFlags())
	for _, c := range root.Commands() {
		add(c.Name(), c.LocalNonPersistentFlags())
	}
	configfile.SortFlags(out)
	return out
}

// TestReference: docs/CONFIG.md is what the code generates, so a configuration key or a
// flag that is undocumented (no doc comment, no usage text) or whose documented default
// differs from the code fails here. `go generate ./cmd/ofa` rewrites the file.
func TestReference(t *testing.T) {
	docs, err := configfile.FieldDocs(filepath.Join("..", ".."), "github.com/ofa-go/ofa")
	if err != nil {
		t.Fatal(err)
	}
	a := &app{stdout: io.Discard, stderr: io.Discard}
	got, err := configfile.Reference(docs, commandFlags(a.rootCmd()))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(referenceFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatalf("%v: run go generate ./cmd/ofa", err)
	}
	if string(want) != got {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s is stale (run go generate ./cmd/ofa); first difference at line %d:\n code: %s\n file: %s", referenceFile, i+1, g, w)
			}
		}
	}
}

// TestReferenceCatchesOmissions: a key without a doc comment and a flag without usage text
// are refused, so the reference cannot silently leave them out.
func TestReferenceCatchesOmissions(t *testing.T) {
	docs, err := configfile.FieldDocs(filepath.Join("..", ".."), "github.com/ofa-go/ofa")
	if err != nil {
		t.Fatal(err)
	}
	for k := range docs {
		if strings.HasSuffix(k, "sampler.Config.Reuse") {
			docs[k] = ""
		}
	}
	if _, err := configfile.Reference(docs, nil); !errors.Is(err, configfile.ErrUndocumented) || !strings.Contains(err.Error(), "sampler.reuse") {
		t.Fatalf("a key without a doc comment: got %v, want ErrUndocumented naming sampler.reuse", err)
	}
	docs, _ = configfile.FieldDocs(filepath.Join("..", ".."), "github.com/ofa-go/ofa")
	flags := []configfile.Flag{{Command: "train", Name: "epochs", Type: "int", Key: "train.epochs"}}
	if _, err := configfile.Reference(docs, flags); !errors.Is(err, configfile.ErrUndocumented) || !strings.Contains(err.Error(), "--epochs") {
		t.Fatalf("a flag without usage: got %v, want ErrUndocumented naming --epochs", err)
	}
	flags = []configfile.Flag{{Command: "train", Name: "epochs", Type: "int", Usage: "epochs", Key: "train.epoch"}}
	if _, err := configfile.Reference(docs, flags); !errors.Is(err, configfile.ErrUndocumented) {
		t.Fatalf("a flag bound to an unknown key: got %v, want ErrUndocumented", err)
	}
}

// configKeyInText matches a backquoted dotted configuration key in Markdown (`train.lr`).
var configKeyInText = regexp.MustCompile("`((?:data|model|sampler|train|finetune|extract|expand|run|reorder)\\.[a-z_.]+)`")

// fileExt are the extensions of file names that look like keys (`model.safetensors`).
var fileExt = map[string]bool{".safetensors": true, ".json": true, ".yaml": true, ".onnx": true, ".md": true, ".csv": true, ".png": true}

// TestDocsNameOnlyKnownKeys: every configuration key the README and docs/ name in
// backquotes exists, so no page documents a key the code lost or renamed.
func TestDocsNameOnlyKnownKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range configfile.Keys() {
		known[k.Key] = true
		// a section or a brace group (`extract.search.*`, `data.speech.frontend.{...}`)
		for i := range k.Key {
			if k.Key[i] == '.' {
				known[k.Key[:i]] = true
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	files = append(files, filepath.Join("..", "..", "README.md"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range configKeyInText.FindAllStringSubmatch(string(b), -1) {
			key := strings.TrimSuffix(m[1], ".")
			if ext := filepath.Ext(key); !known[key] && !fileExt[ext] {
				t.Errorf("%s names configuration key %s, which does not exist", f, m[1])
			}
		}
	}
}

// TestJSONKeepsText: the --json line writes "<=" as is, not as "\u003c=".
func TestJSONKeepsText(t *testing.T) {
	var out strings.Builder
	a := &app{stdout: &out, json: true}
	a.emit(map[string]any{"error": "params <= 1000 & macs > 5"})
	if got := strings.TrimSpace(out.String()); got != `{"error":"params <= 1000 & macs > 5"}` {
		t.Fatalf("got %s", got)
	}
}

// TestExamplesUseRealFlags: every flag a command's help examples use exists on that
// command, so the examples cannot drift from the code.
func TestExamplesUseRealFlags(t *testing.T) {
	a := &app{stdout: io.Discard, stderr: io.Discard}
	root := a.rootCmd()
	flagRe := regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`)
	for _, c := range root.Commands() {
		for _, line := range strings.Split(c.Example, "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "ofa" || fields[1] != c.Name() {
				continue // another program's line (go build), a comment or a continuation
			}
			for _, m := range flagRe.FindAllStringSubmatch(strings.SplitN(line, "#", 2)[0], -1) {
				if c.Flags().Lookup(m[1]) == nil && c.InheritedFlags().Lookup(m[1]) == nil && root.PersistentFlags().Lookup(m[1]) == nil {
					t.Errorf("ofa %s --help: example %q uses --%s, which the command lacks", c.Name(), strings.TrimSpace(line), m[1])
				}
			}
		}
	}
}
