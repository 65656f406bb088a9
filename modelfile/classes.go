package modelfile

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// EncodeClasses is the KeyClasses metadata value for class names in label order: a JSON
// list of strings.
func EncodeClasses(names []string) string {
	b, err := json.Marshal(names)
	if err != nil {
		panic("modelfile: class names do not marshal: " + err.Error())
	}
	return string(b)
}

// DecodeClasses reads a KeyClasses metadata value for a model of n classes; the error
// wraps ErrNotModel and names the key.
func DecodeClasses(s string, n int) ([]string, error) {
	var names []string
	if err := json.Unmarshal([]byte(s), &names); err != nil {
		return nil, fmt.Errorf("%w: metadata %q: %v (want a JSON list of strings)", ErrNotModel, KeyClasses, err)
	}
	if len(names) != n {
		return nil, fmt.Errorf("%w: metadata %q names %d classes, the architecture has %d", ErrNotModel, KeyClasses, len(names), n)
	}
	return names, nil
}

// ClassNames returns the model's class names in label order: its KeyClasses metadata, or
// the labels "0", "1", ... for files that do not carry it.
func (m *Model) ClassNames() ([]string, error) {
	s, ok := m.Extra[KeyClasses]
	if !ok {
		names := make([]string, m.Arch.Classes)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return names, nil
	}
	return DecodeClasses(s, m.Arch.Classes)
}

// HasClassNames says whether the model's metadata names its classes.
func (m *Model) HasClassNames() bool {
	_, ok := m.Extra[KeyClasses]
	return ok
}

// SetClassNames records class names in label order, one per class of the architecture.
func (m *Model) SetClassNames(names []string) error {
	if len(names) != m.Arch.Classes {
		return fmt.Errorf("modelfile: %d class names for %d classes", len(names), m.Arch.Classes)
	}
	if m.Extra == nil {
		m.Extra = map[string]string{}
	}
	m.Extra[KeyClasses] = EncodeClasses(names)
	return nil
}

// CopyClassNames copies the class names of model from, as stored, into the metadata extra
// of a model derived from it (nothing when from has none).
func CopyClassNames(extra map[string]string, from *Model) map[string]string {
	if c, ok := from.Extra[KeyClasses]; ok {
		extra[KeyClasses] = c
	}
	return extra
}
