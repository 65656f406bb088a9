package modelfile

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
)

// TestClassNames: the stored names, label numbers without them, errors naming the key.
func TestClassNames(t *testing.T) {
	a := arch.Default()
	a.Classes = 3
	m := &Model{Arch: a, Extra: map[string]string{}}
	if got, err := m.ClassNames(); err != nil || !slices.Equal(got, []string{"0", "1", "2"}) {
		t.Errorf("without metadata: %v, %v", got, err)
	}
	if m.HasClassNames() {
		t.Error("a model without metadata has class names")
	}
	if err := m.SetClassNames([]string{"cat", "dog"}); err == nil {
		t.Error("two names for three classes were accepted")
	}
	if err := m.SetClassNames([]string{"cat", "dog", "eel"}); err != nil || !m.HasClassNames() {
		t.Fatal(err)
	}
	if got, err := m.ClassNames(); err != nil || !slices.Equal(got, []string{"cat", "dog", "eel"}) {
		t.Errorf("stored: %v, %v", got, err)
	}
	derived := CopyClassNames(map[string]string{}, m)
	if derived[KeyClasses] != `["cat","dog","eel"]` {
		t.Errorf("copied metadata %v", derived)
	}
	for _, bad := range []string{`["cat"]`, `{"0":"cat"}`} {
		m.Extra[KeyClasses] = bad
		if _, err := m.ClassNames(); !errors.Is(err, ErrNotModel) || !strings.Contains(err.Error(), `"classes"`) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
