package configfile

import (
	"fmt"
	"testing"

	"github.com/ofa-go/ofa/config"
)

// TestStoredConfigRoundTrip: the stored form of a configuration loads back to the same
// configuration, so a resumed run trains exactly as the interrupted one did.
func TestStoredConfigRoundTrip(t *testing.T) {
	c := config.Default()
	c.Train.LR, c.Model.InitSeed, c.Sampler.Random = 1.234567890123e-3, 1<<40+3, 1
	c.Extract.Remote.URL = "http://127.0.0.1:1/x"
	got, err := Loader{Stored: Store(c), Where: "stored"}.Load()
	if err != nil {
		t.Fatal(err)
	}
	// nil and empty lists store alike; compare everything else field by field
	if string(Store(got)) != string(Store(c)) || fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", c) {
		t.Fatalf("round trip changed the configuration:\n got %+v\nwant %+v", got, c)
	}
}
