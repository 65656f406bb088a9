//go:build mpi

package cluster_test

import (
	"testing"

	"github.com/ofa-go/ofa/cluster"
	"github.com/ofa-go/ofa/cluster/mpirun"
)

// TestMPICollectives runs the collectives over Open MPI with two ranks.
func TestMPICollectives(t *testing.T) {
	if !cluster.Launched() {
		mpirun.Test(t, 2)
		return
	}
	w, err := cluster.Detect()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cluster.Finish(w, t.Failed()) }()
	if w.Size() != 2 {
		t.Fatalf("world of %d ranks, want 2", w.Size())
	}
	if err := cluster.ExportedCollectives(w); err != nil {
		t.Fatal(err)
	}
}
