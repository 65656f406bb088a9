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
