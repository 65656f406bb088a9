package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/spf13/pflag"
)

// storedModel is a model whose provenance holds configuration c.
func storedModel(c Config) *modelfile.Model {
	return &modelfile.Model{Provenance: &modelfile.Provenance{Step: "train", Config: string(Store(c))}}
}

// flags returns flags set on the command line, bound to their keys.
func flags(t *testing.T, kv map[string]string) map[string]*pflag.Flag {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	out := map[string]*pflag.Flag{}
	for key, v := range kv {
		name := strings.ReplaceAll(key, ".", "-")
		if key == "data.embedded" {
			fs.Bool(name, false, "")
		} else {
			fs.String(name, "", "")
		}
		if err := fs.Set(name, v); err != nil {
			t.Fatal(err)
		}
		out[key] = fs.Lookup(name)
	}
	return out
}

// TestForModel: a command reading a model uses the model's stored configuration unless a
// configuration file is given; a flag naming a data source replaces the stored source as a
// whole, and the origin says whether the data section is the model's.
func TestForModel(t *testing.T) {
	stored := config.Default()
	stored.Data.Embedded, stored.Data.ValSize, stored.Data.Augment.CropPad, stored.Data.Augment.HFlip = true, 500, 0, false
	stored.Finetune.Epochs = 1
	m := storedModel(stored)
	def := config.Default()
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("finetune:\n  epochs: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		l        Loader
		m        *modelfile.Model
		env      map[string]string
		check    func(c Config) bool
		fromData bool
		line     string
	}{
		{"stored", Loader{}, m, nil, func(c Config) bool { return string(Store(c)) == string(Store(stored)) }, true, "the one stored in M"},
		{"data flag replaces the source", Loader{Flags: flags(t, map[string]string{"data.dir": "elsewhere"})}, m, nil,
			func(c Config) bool {
				return !c.Data.Embedded && c.Data.Dir == "elsewhere" && c.Data.ValSize == 500 && c.Finetune.Epochs == 1
			}, false, "with the flags given over it"},
		{"other flags keep the stored data", Loader{Flags: flags(t, map[string]string{"finetune.epochs": "2"})}, m, nil,
			func(c Config) bool { return c.Data.Embedded && c.Finetune.Epochs == 2 }, true, "stored in M"},
		{"environment setting a data key", Loader{}, m, map[string]string{"OFA_DATA_TEST_LIMIT": "10"},
			func(c Config) bool { return c.Data.Embedded && c.Data.TestLimit == 10 }, false, "stored in M"},
		{"environment naming a source", Loader{}, m, map[string]string{"OFA_DATA_DIR": "x"},
			func(c Config) bool { return !c.Data.Embedded && c.Data.Dir == "x" }, false, "stored in M"},
		{"a file replaces the stored configuration", Loader{File: file}, m, nil,
			func(c Config) bool {
				return !c.Data.Embedded && c.Data.ValSize == def.Data.ValSize && c.Finetune.Epochs == 3
			}, false, "is not used"},
		{"no stored configuration", Loader{}, &modelfile.Model{}, nil,
			func(c Config) bool { return string(Store(c)) == string(Store(def)) }, true, "the defaults (M stores no configuration)"},
		{"a stored configuration that no longer loads", Loader{},
			&modelfile.Model{Provenance: &modelfile.Provenance{Config: "train:\n  gone_key: 1\n"}}, nil,
			func(c Config) bool { return string(Store(c)) == string(Store(def)) }, true, `does not load`},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			got, origin, err := c.l.ForModel("M", c.m)
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(got) {
				t.Errorf("configuration %+v", got)
			}
			if origin.DataFromModel != c.fromData || !strings.Contains(origin.Line, c.line) {
				t.Errorf("origin %+v, want data from the model %t and a line with %q", origin, c.fromData, c.line)
			}
		})
	}
}

// TestForResume: a resumed lifecycle without a configuration file uses the one it was
// started with, so that its stored form is unchanged (the lifecycle compares them).
func TestForResume(t *testing.T) {
	dir := t.TempDir()
	c := config.Default()
	c.Data.Embedded, c.Train.Epochs, c.Out = true, 2, dir
	if err := os.WriteFile(filepath.Join(dir, config.RunFile), Store(c), 0o644); err != nil {
		t.Fatal(err)
	}
	got, line, err := Loader{Flags: flags(t, map[string]string{"out": dir})}.ForResume(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(Store(got)) != string(Store(c)) || !strings.Contains(line, "started with") {
		t.Fatalf("resumed configuration differs (%s):\n%s\nwant\n%s", line, Store(got), Store(c))
	}
	got, line, err = Loader{}.ForResume(t.TempDir())
	if err != nil || string(Store(got)) != string(Store(config.Default())) || !strings.Contains(line, "missing") {
		t.Fatalf("nothing to resume: %s, %v", line, err)
	}
}
