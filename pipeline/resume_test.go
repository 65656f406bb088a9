package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/modelfile"
)

// TestResumeOrMake: a step's outputs are loaded only when resuming over a complete
// directory; a step that did not finish or outputs made with other settings are made
// again; a complete directory that cannot be read is an error naming it.
func TestResumeOrMake(t *testing.T) {
	errBroken := errors.New("broken")
	cases := []struct {
		name          string
		resume        bool
		model, marker bool
		loadErr       error
		want          string
		wantErr       error
	}{
		{"fresh run", false, true, false, nil, "made", nil},
		{"nothing there", true, false, false, nil, "made", nil},
		{"step did not finish", true, true, true, nil, "made", nil},
		{"complete", true, true, false, nil, "loaded", nil},
		{"other settings", true, true, false, fmt.Errorf("%w: 3 steps", errStale), "made", nil},
		{"complete but unreadable", true, true, false, errBroken, "", ErrDamaged},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "step")
			if c.model {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, FileModel), []byte("x"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.marker {
				if err := modelfile.BeginDir(dir, "test"); err != nil {
					t.Fatal(err)
				}
			}
			got, err := resumeOrMake(c.resume, dir,
				func() (string, error) { return "loaded", c.loadErr },
				func() (string, error) { return "made", nil })
			if got != c.want || !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, c.want, c.wantErr)
			}
			if err != nil && (!errors.Is(err, errBroken) || !strings.Contains(err.Error(), dir)) {
				t.Errorf("error %v does not name %s and its cause", err, dir)
			}
		})
	}
}
