//go:build !openblas

package nn

// BLAS names the BLAS in use: gonum's pure-Go implementation unless built with the
// openblas tag.
const BLAS = "gonum"
