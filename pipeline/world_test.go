package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/report"
)

// comparable is a report row without what a clock measured (latency, wall times).
func comparable(r report.Row) string {
	r.LatencyMS = 0
	r.Compute = append([]report.Stage(nil), r.Compute...)
	for i := range r.Compute {
		r.Compute[i].Seconds, r.Compute[i].Untimed = 0, false
	}
	b, _ := json.Marshal(r)
	return string(b)
}

// TestLifecycleRanks: a lifecycle over two ranks (the supernet and the dense model data
// parallel, the budgets shared out) writes the report of one process, row for row, and the
// same supernet, byte for byte.
func TestLifecycleRanks(t *testing.T) {
	if testing.Short() {
		t.Skip("two lifecycles")
	}
	tiny := func(dir string) Config {
		c := tinyLifecycle(dir)
		c.Run.Budgets = []string{"1.5x", "2x", "3x"}
		c.Run.Baselines, c.Run.Scratch, c.Run.ScratchEqualSteps, c.Run.DensePrune = false, false, false, true
		return c
	}
	oneDir := t.TempDir()
	one, err := Lifecycle(context.Background(), tiny(oneDir), LifecycleOptions{Dir: oneDir, StoredConfig: []byte(tinyStored)})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	worlds := cluster.Local(2)
	reps := make([]*report.Report, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r, w := range worlds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[r], errs[r] = Lifecycle(context.Background(), tiny(dir), LifecycleOptions{Dir: dir, StoredConfig: []byte(tinyStored), World: w})
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	if reps[1] != nil {
		t.Fatal("rank 1 returned a report; rank 0 alone merges it")
	}
	two := reps[0]
	if len(two.Rows) != len(one.Rows) || len(one.Rows) == 0 {
		t.Fatalf("two ranks gave %d rows, one process %d", len(two.Rows), len(one.Rows))
	}
	if a, b := comparable(two.Reference), comparable(one.Reference); a != b {
		t.Fatalf("reference row differs:\ntwo ranks   %s\none process %s", a, b)
	}
	budgets := map[string]bool{}
	for i := range one.Rows {
		if a, b := comparable(two.Rows[i]), comparable(one.Rows[i]); a != b {
			t.Fatalf("row %d differs:\ntwo ranks   %s\none process %s", i, a, b)
		}
		if two.Rows[i].LatencyMS <= 0 {
			t.Fatalf("row %d (%s %s) has no latency", i, two.Rows[i].Budget, two.Rows[i].Variant)
		}
		budgets[two.Rows[i].Budget] = true
	}
	if len(budgets) != 3 {
		t.Fatalf("rows of budgets %v, want 3 budgets", budgets)
	}
	if fmt.Sprint(two.Accuracies) != fmt.Sprint(one.Accuracies) {
		t.Fatal("the validation curves differ")
	}
	for _, f := range []string{filepath.Join(DirSupernet, FileSupernet), filepath.Join(DirDense, FileModel)} {
		a, err := modelfile.FileSHA256(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		b, err := modelfile.FileSHA256(filepath.Join(oneDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("%s differs between two ranks and one process", f)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, FileReport)); err != nil {
		t.Fatalf("the merged report: %v", err)
	}
}
