// Package pipeline is the tool's lifecycle as a library: train a supernet, extract models
// for budgets, expand them by layer reuse, fine-tune them, train the baselines they are
// compared with, and run all of it for a list of budgets into a report. Every step is a
// function on values that returns models in memory with their results; writing files is
// the caller's choice (steps that take an output directory write there atomically).
package pipeline

import "github.com/ofa-go/ofa/config"

// The configuration's types live in package config (a leaf, so that package configfile
// decodes files and stored configurations alike); the lifecycle names them here too.
type (
	// Config is the whole configuration of the tool (config.Config).
	Config = config.Config
	// DataConfig is the "data" section (config.DataConfig).
	DataConfig = config.DataConfig
	// SpeechConfig is the "data.speech" section (config.SpeechConfig).
	SpeechConfig = config.SpeechConfig
	// ModelConfig is the "model" section (config.ModelConfig).
	ModelConfig = config.ModelConfig
	// ExtractConfig is the "extract" section (config.ExtractConfig).
	ExtractConfig = config.ExtractConfig
	// RunConfig is the "run" section (config.RunConfig).
	RunConfig = config.RunConfig
	// ReorderConfig is the "reorder" section (config.ReorderConfig).
	ReorderConfig = config.ReorderConfig
)

// ErrConfig is wrapped by every configuration error (config.ErrConfig).
var ErrConfig = config.ErrConfig

// DefaultConfig is the configuration without file, environment or flags (config.Default).
func DefaultConfig() Config { return config.Default() }
