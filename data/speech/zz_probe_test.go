package speech

import (
	"os"
	"testing"
	"time"
)

func nearestCentroid(train, test *Set) float64 {
	size := train.FeatureSize()
	k := len(train.ClassNames)
	cent := make([][]float64, k)
	cnt := make([]int, k)
	for c := range cent {
		cent[c] = make([]float64, size)
	}
	for i := range train.N {
		l := train.Labels[i]
		cnt[l]++
		for j, v := range train.Example(i) {
			cent[l][j] += float64(v)
		}
	}
	for c := range cent {
		for j := range cent[c] {
			cent[c][j] /= float64(cnt[c])
		}
	}
	ok := 0
	for i := range test.N {
		best, bd := -1, 1e300
		for c := range cent {
			var d float64
			for j, v := range test.Example(i) {
				e := float64(v) - cent[c][j]
				d += e * e
			}
			if d < bd {
				best, bd = c, d
			}
		}
		if uint8(best) == test.Labels[i] {
			ok++
		}
	}
	return float64(ok) / float64(test.N)
}

func TestProbe(t *testing.T) {
	tr, va, te, err := LoadEmbeddedDigits(DefaultFrontend())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("embedded: stats %+v, nearest-centroid val %.2f test %.2f", tr.Stats(), nearestCentroid(tr, va), nearestCentroid(tr, te))
	if _, err := os.Stat("/tmp/spoken-digits"); err != nil {
		return
	}
	st := time.Now()
	tr, va, te, err = LoadCommands("/tmp/spoken-digits", DefaultFrontend(), DigitClasses())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("full: load %v, %d/%d/%d, speakers %d/%d/%d, stats %+v", time.Since(st), tr.N, va.N, te.N,
		len(tr.SpeakerList()), len(va.SpeakerList()), len(te.SpeakerList()), tr.Stats())
	t.Logf("full nearest-centroid val %.2f test %.2f", nearestCentroid(tr, va), nearestCentroid(tr, te))
}
