// Package nn holds the Transformer's operations as gorgonia graph builders, in two
// interchangeable implementations behind the Ops interface:
//
//   - Fused: each operation is one custom gorgonia Op with its own forward and backward
//     kernels on contiguous buffers (BLAS for the matrix products, buffers reused across
//     steps). This is what training and inference use.
//   - Composed: the same maths from gorgonia's stock operations, kept as the reference that
//     the fused kernels are tested against (values and gradients).
//
// Every operation works in float32 (training) and float64 (finite-difference tests).
// Shapes follow one convention: a batch of token sequences is a matrix (B*T, D) with the
// tokens of example b in rows b*T .. b*T+T-1.
package nn
