package configfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestFileCheckedBeforeFlags: issue 29, finding 7. A bad value in the file is an error
// even when a flag overrides it, and a quoted string is not read as a number or a
// boolean; the same values from a flag are still parsed.
func TestFileCheckedBeforeFlags(t *testing.T) {
	for _, c := range []struct {
		name, file, flag, value, key string
		want                         []string
	}{
		{"negative steps hidden by --steps", "train:\n  steps: -5\n", "steps", "5", "train.steps", []string{"train.steps", "before flags"}},
		{"word for a boolean hidden by --embedded", "data:\n  embedded: 'yes please'\n", "embedded", "true", "data.embedded", []string{"data.embedded", "yes please"}},
		{"quoted number", "train:\n  lr: '1e-3'\n", "", "", "", []string{"train.lr", "1e-3", "without quotes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			l := Loader{File: path}
			if c.flag != "" {
				fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
				fs.String(c.flag, "", "")
				if err := fs.Parse([]string{"--" + c.flag + "=" + c.value}); err != nil {
					t.Fatal(err)
				}
				l.Flags = map[string]*pflag.Flag{c.key: fs.Lookup(c.flag)}
			}
			_, err := l.Load()
			if err == nil {
				t.Fatalf("loaded %q", c.file)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// the repository's configurations still load
	files, _ := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no configurations found in ../configs")
	}
	for _, f := range files {
		if _, err := (Loader{File: f}).Load(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
