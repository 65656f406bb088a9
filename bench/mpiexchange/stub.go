//go:build !mpi

// Command mpiexchange times the gradient exchange under MPI; this build has no MPI (see
// main.go: build it with -tags mpi).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "mpiexchange: built without MPI: go build -tags mpi ./bench/mpiexchange")
	os.Exit(1)
}
