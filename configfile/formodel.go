package configfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ofa-go/ofa/config"
	"github.com/ofa-go/ofa/data"
	"github.com/ofa-go/ofa/modelfile"
	"go.yaml.in/yaml/v3"
)

// DataSourceKeys are the keys that say where data comes from. Given by a flag or an
// environment variable to a command that reads a model, they replace the source stored in
// the model's configuration as a whole (so that --data DIR is not overruled by a stored
// data.embedded: true); the data section's other keys (splits, limits, augmentation) stay.
var DataSourceKeys = []string{"data.dir", "data.embedded", "data.task", "data.speech.dir", "data.speech.classes"}

// Origin says where ForModel's configuration came from.
type Origin struct {
	// Line says it in words, for the command's output.
	Line string
	// DataFromModel says that the data section is the model's stored one: no
	// configuration file, and no flag or environment variable setting a data key.
	DataFromModel bool
}

// ForModel loads the configuration of a command that reads the model m (read from path):
// with a configuration file (l.File), that file over the defaults, as every command does;
// without one, the configuration stored in the model (its provenance) stands in for the
// defaults, so that the command uses the data and settings the model was made with.
// Environment variables and flags apply over either. It returns the configuration and
// where it came from. A model that stores no configuration, or one that no
// longer loads, falls back to the defaults, and the line says so.
func (l Loader) ForModel(path string, m *modelfile.Model) (Config, Origin, error) {
	if l.File != "" {
		c, err := l.Load()
		return c, Origin{Line: fmt.Sprintf("configuration: %s (over the defaults; the one stored in %s is not used)", l.File, path)}, err
	}
	if m.Provenance == nil || m.Provenance.Config == "" {
		c, err := l.Load()
		return c, Origin{Line: fmt.Sprintf("configuration: the defaults (%s stores no configuration)", path), DataFromModel: !l.dataGiven()}, err
	}
	base, err := withoutSource([]byte(m.Provenance.Config), l.sourceGiven())
	if err != nil {
		c, lerr := l.Load()
		return c, Origin{Line: fmt.Sprintf("configuration: the defaults (the one stored in %s does not load: %v; give --config to choose)", path, err),
			DataFromModel: !l.dataGiven()}, lerr
	}
	b := l
	b.Base, b.BaseWhere = base, path+" (stored configuration)"
	c, err := b.Load()
	if err != nil {
		c, lerr := l.Load()
		return c, Origin{Line: fmt.Sprintf("configuration: the defaults (the one stored in %s does not load: %v; give --config to choose)", path, err),
			DataFromModel: !l.dataGiven()}, lerr
	}
	line := fmt.Sprintf("configuration: the one stored in %s (written by its %s step)", path, m.Provenance.Step)
	if len(l.Flags) > 0 {
		line += ", with the flags given over it"
	}
	return c, Origin{Line: line, DataFromModel: !l.dataGiven()}, nil
}

// sourceGiven says whether a flag or an environment variable names a data source.
func (l Loader) sourceGiven() bool { return l.given(DataSourceKeys) }

// dataGiven says whether a flag or an environment variable sets any key of the data section.
func (l Loader) dataGiven() bool {
	var keys []string
	for k := range knownKeys() {
		if strings.HasPrefix(k, "data.") {
			keys = append(keys, k)
		}
	}
	return l.given(keys)
}

// given says whether a flag or an environment variable sets one of keys.
func (l Loader) given(keys []string) bool {
	for _, k := range keys {
		if _, ok := l.Flags[k]; ok {
			return true
		}
		if _, ok := os.LookupEnv("OFA_" + strings.ToUpper(strings.ReplaceAll(k, ".", "_"))); ok {
			return true
		}
	}
	return false
}

// withoutSource returns the stored document doc, without DataSourceKeys when drop is set.
func withoutSource(doc []byte, drop bool) ([]byte, error) {
	var root map[string]any
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, err
	}
	if !drop {
		return doc, nil
	}
	for _, k := range DataSourceKeys {
		parts := strings.Split(k, ".")
		m := root
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				m = nil
				break
			}
			m = sub
		}
		if m != nil {
			delete(m, parts[len(parts)-1])
		}
	}
	return yaml.Marshal(root)
}

// ForResume loads the configuration of a lifecycle resumed in dir: with a configuration
// file (l.File), that file over the defaults; without one, the configuration the
// lifecycle was started with (dir/config.yaml) stands in for the defaults, so that the
// resumed run uses its data and settings. Environment variables and flags apply over it.
// dir "" is the output directory that environment (OFA_OUT) or defaults name. It returns
// the configuration and a line saying where it came from.
func (l Loader) ForResume(dir string) (Config, string, error) {
	if l.File != "" {
		c, err := l.Load()
		return c, "configuration: " + l.File, err
	}
	if dir == "" {
		dir = os.Getenv("OFA_OUT")
	}
	if dir == "" {
		dir = config.Default().Out
	}
	path := filepath.Join(dir, config.RunFile)
	b, err := data.ReadFileLimited(path, MaxBytes)
	if err != nil {
		// no lifecycle to resume: the lifecycle says so, naming the file
		c, lerr := l.Load()
		return c, "configuration: the defaults (" + path + " is missing)", lerr
	}
	r := l
	r.Base, r.BaseWhere = b, path
	c, err := r.Load()
	return c, "configuration: the one the run was started with (" + path + ")", err
}
