package main

import (
	"strings"
	"testing"
)

// TestRecipeKeysNameTheKey: the training-recipe keys are checked, and errors name them.
func TestRecipeKeysNameTheKey(t *testing.T) {
	for _, c := range []struct{ config, want string }{
		{"model:\n  init: xavier\n", "model.init"},
		{"sampler:\n  warm_fraction: 1.5\n", "sampler.warm_fraction"},
		{"train:\n  largest_label_smoothing: 1\n", "train.largest_label_smoothing"},
		{"model:\n  zero_init_residual: maybe\n", "zero_init_residual"},
	} {
		code, _, stderr := ofa(t, "train", "--out", t.TempDir(), "--config", writeConfig(t, c.config))
		if code == 0 {
			t.Errorf("%q: accepted a bad configuration", c.config)
		} else if !strings.Contains(stderr, c.want) {
			t.Errorf("%q: error %q does not mention %q", c.config, stderr, c.want)
		}
	}
}

// TestRecipeKeysFromEnvironment: the recipe keys can be set from OFA_ variables (the recipe
// grid script sets them so).
func TestRecipeKeysFromEnvironment(t *testing.T) {
	t.Setenv("OFA_MODEL_INIT", "pytorch")
	t.Setenv("OFA_MODEL_ZERO_INIT_RESIDUAL", "true")
	t.Setenv("OFA_SAMPLER_WARM_FRACTION", "0.25")
	t.Setenv("OFA_TRAIN_LARGEST_LABEL_SMOOTHING", "0.1")
	t.Setenv("OFA_TRAIN_PROJECT_CONFLICTS", "true")
	c, err := loader{}.load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Model.Init != "pytorch" || !c.Model.ZeroInitResidual || c.Sampler.WarmFraction != 0.25 ||
		c.Train.LargestLabelSmoothing != 0.1 || !c.Train.ProjectConflicts {
		t.Fatalf("model %+v, sampler %+v, train %+v: the environment was not applied", c.Model, c.Sampler, c.Train)
	}
}
