package main

import (
	"github.com/ofa-go/ofa/arch"
	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/configfile"
	"github.com/ofa-go/ofa/modelfile"
	"github.com/ofa-go/ofa/pipeline"
)

// The prologue the commands share, in the steps each takes in its own order: build the
// configuration, load the model and the configuration for it, claim the output directory,
// load the data and say which.

// loader is a command's configuration loader: --config, then the flags the user set.
func (a *app) loader(fk flagKeys) configfile.Loader {
	return configfile.Loader{File: a.configFile, Flags: changed(fk)}
}

// modelConfig loads the model file at path and the configuration for it: --config and the
// flags over the configuration the model stores (configfile.Loader.ForModel).
func (a *app) modelConfig(path string, fk flagKeys) (*modelfile.Model, config.Config, configfile.Origin, error) {
	m, err := modelfile.Load(path)
	if err != nil {
		return nil, config.Config{}, configfile.Origin{}, err
	}
	cfg, origin, err := a.loader(fk).ForModel(path, m)
	return m, cfg, origin, err
}

// claimModelDir claims out for a command that writes one model there, refusing a model
// already there unless force is set.
func (a *app) claimModelDir(out string, force bool) (func() error, error) {
	return a.claim(out, func() error { return refuseExistingModel(out, force) })
}

// modelData loads the data cfg names for model m (read from path) and says which data it
// is (the model's own, or not) and where the configuration came from.
func (a *app) modelData(cfg config.Config, path string, m *modelfile.Model, origin configfile.Origin) (*pipeline.Dataset, error) {
	ds, err := pipeline.LoadData(cfg.Data)
	if err != nil {
		return nil, err
	}
	a.say("%s", ds.DataLine(path, m, origin.DataFromModel))
	a.say("%s", origin.Line)
	return ds, nil
}

// modelSubnet loads the model file at path and the one subnet --subnet names in it.
func modelSubnet(path, subnetArg string) (*modelfile.Model, arch.Subnet, error) {
	m, err := modelfile.Load(path)
	if err != nil {
		return nil, arch.Subnet{}, err
	}
	s, err := oneSubnet(subnetArg, m)
	return m, s, err
}
