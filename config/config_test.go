package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/sampler"
)

// TestAutoPatch: the default patch divides the input and leaves at least
// MinPatchesPerSide patches along each side.
func TestAutoPatch(t *testing.T) {
	for _, c := range []struct{ n, want int }{{28, 7}, {32, 8}, {40, 10}, {64, 16}, {30, 6}, {29, 1}, {3, 1}, {100, 25}} {
		got := AutoPatch(c.n)
		if got != c.want || c.n%got != 0 || (c.n >= MinPatchesPerSide && c.n/got < MinPatchesPerSide) {
			t.Errorf("AutoPatch(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestPatchAgainstData: the model section is valid before the data is read whatever its
// image size; its patch is checked against the data's real size, an unset patch divides
// it, and a patch that does not divide it is an error naming the key and the data size.
func TestPatchAgainstData(t *testing.T) {
	c := Default()
	if c.Model.PatchSize != 0 {
		t.Fatalf("default model.patch_size %d, want 0 (chosen from the data)", c.Model.PatchSize)
	}
	for _, size := range [][2]int{{28, 28}, {32, 32}, {32, 48}} {
		a, _, err := c.Model.Arch(arch.TaskImage, 3, size[0], size[1], 5)
		if err != nil {
			t.Fatalf("%v: %v", size, err)
		}
		if a.PatchHeight != AutoPatch(size[0]) || a.PatchWidth != AutoPatch(size[1]) {
			t.Errorf("%v: patch %dx%d", size, a.PatchHeight, a.PatchWidth)
		}
	}
	c.Model.PatchSize = 7
	if err := c.Validate(); err != nil {
		t.Fatalf("patch 7 refused before the data is known: %v", err)
	}
	_, _, err := c.Model.Arch(arch.TaskImage, 3, 32, 32, 5)
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "model.patch_size 7") || !strings.Contains(err.Error(), "32x32") ||
		!strings.Contains(err.Error(), "8x8") {
		t.Fatalf("patch 7 on 32x32 data: %v", err)
	}
}

// TestBudgetOnlyNeedsATeacher: training only the budgets' subnets leaves no largest subnet
// to distil from, so the configuration needs run.teacher.
func TestBudgetOnlyNeedsATeacher(t *testing.T) {
	c := Default()
	c.Sampler.Kind, c.Sampler.BudgetOnly = sampler.KindBudgets, true
	if err := c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "sampler.budget_only") {
		t.Fatalf("budget_only without a teacher: got %v, want an error naming sampler.budget_only", err)
	}
	c.Run.Teacher = TeacherDense
	if err := c.Validate(); err != nil {
		t.Fatalf("budget_only with run.teacher dense: %v", err)
	}
}
