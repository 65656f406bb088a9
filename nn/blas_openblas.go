//go:build openblas

package nn

// #cgo LDFLAGS: -lopenblas
// void openblas_set_num_threads(int);
import "C"

import (
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/netlib/blas/netlib"
	G "gorgonia.org/gorgonia"
)

// With the openblas build tag every matrix product (the fused kernels' and gorgonia's own)
// goes to OpenBLAS through cgo.
func init() {
	// one OpenBLAS thread: gemm splits large products across goroutines itself (see gemm)
	C.openblas_set_num_threads(1)
	blas32.Use(netlib.Implementation{})
	blas64.Use(netlib.Implementation{})
	G.Use(netlib.Implementation{})
}

// BLAS names the BLAS in use.
const BLAS = "openblas"
