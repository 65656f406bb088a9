//go:build !mpi

package cluster

import "fmt"

// Detect returns the world this process belongs to. This build has no MPI: it is the
// one-rank world, or an error when a launcher started several ranks of this binary (each
// would train alone and write the same files).
func Detect() (World, error) {
	if Launched() {
		return nil, fmt.Errorf("cluster: started by an MPI launcher, but this binary was built without MPI: build it with -tags mpi (cgo and libopenmpi-dev)")
	}
	return Single{}, nil
}
