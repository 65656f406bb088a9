package latency

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestLoadTableMessages: issue 29, finding 8. A bad value in a latency table is
// named by its field and position, with what was expected, not printed as a Go struct.
func TestLoadTableMessages(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(*Table)
		want []string
	}{
		{"negative block time", func(tb *Table) { tb.Blocks[3].MS = -5 }, []string{"blocks[3].ms", "got -5", "want a time >= 0"}},
		{"negative stem", func(tb *Table) { tb.StemMS = -1 }, []string{"stem_ms: got -1", "want a time >= 0"}},
		{"zero heads", func(tb *Table) { tb.Blocks[0].Heads = 0 }, []string{"blocks[0].heads: got 0"}},
		{"no batch", func(tb *Table) { tb.Batch = 0 }, []string{"batch: got 0"}},
		{"no blocks", func(tb *Table) { tb.Blocks = nil }, []string{"no measurements"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tb := gridTable()
			tb.Blocks = slices.Clone(tb.Blocks)
			c.edit(tb)
			path := writeTable(t, tb)
			_, err := LoadTable(path)
			if !errors.Is(err, ErrLatency) || strings.Contains(err.Error(), "{") {
				t.Fatalf("error %v, want ErrLatency without a Go struct", err)
			}
			for _, w := range append(c.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
