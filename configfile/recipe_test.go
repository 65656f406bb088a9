package configfile

import (
	"testing"
)

// TestRecipeKeysFromEnvironment: the recipe keys can be set from OFA_ variables (the recipe
// grid script sets them so).
func TestRecipeKeysFromEnvironment(t *testing.T) {
	t.Setenv("OFA_MODEL_INIT", "pytorch")
	t.Setenv("OFA_MODEL_ZERO_INIT_RESIDUAL", "true")
	t.Setenv("OFA_SAMPLER_WARM_FRACTION", "0.25")
	t.Setenv("OFA_TRAIN_LARGEST_LABEL_SMOOTHING", "0.1")
	t.Setenv("OFA_TRAIN_PROJECT_CONFLICTS", "true")
	c, err := Loader{}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Init != "pytorch" || !c.Model.ZeroInitResidual || c.Sampler.WarmFraction != 0.25 ||
		c.Train.LargestLabelSmoothing != 0.1 || !c.Train.ProjectConflicts {
		t.Fatalf("model %+v, sampler %+v, train %+v: the environment was not applied", c.Model, c.Sampler, c.Train)
	}
}
