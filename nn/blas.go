package nn

import (
	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/blas64"
)

// Float is the element type of every kernel.
type Float interface{ ~float32 | ~float64 }

func trans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// parallelGemmWork is the size (m*n*k) above which gemm splits its rows across goroutines
// when the BLAS itself runs on one thread (OpenBLAS here: its own threads busy-wait and
// lose to Go-level splitting at these sizes).
const parallelGemmWork = 1 << 18

// gemm computes C = alpha * op(A) op(B) + beta * C for row-major matrices, where op(A) is
// m x k, op(B) is k x n and C is m x n, with leading dimensions lda, ldb, ldc. It calls the
// BLAS registered with gonum (pure Go by default, OpenBLAS with the openblas build tag).
func gemm[T Float](par int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if BLAS == "openblas" && m*n*k >= parallelGemmWork && m >= 64 {
		// rows [lo, hi) of op(A) and C: for a transposed A those are columns of the stored A
		parallelRows(par, m, n*k, func(lo, hi int) {
			aOff := lo * lda
			if tA {
				aOff = lo
			}
			gemm1(1, tA, tB, hi-lo, n, k, alpha, a[aOff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		})
		return
	}
	gemm1(par, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemm1 is one BLAS call.
func gemm1[T Float](par int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		if BLAS != "openblas" && asm.Available && (beta == 0 || beta == 1) && !(tA && tB) {
			sgemmAsmAlpha(par, tA, tB, m, n, k, float32(alpha), a, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
			return
		}
		blas32.Implementation().Sgemm(trans(tA), trans(tB), m, n, k, float32(alpha), a, lda,
			any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		blas64.Implementation().Dgemm(trans(tA), trans(tB), m, n, k, float64(alpha), a, lda,
			any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	default:
		panic("nn: gemm on unsupported element type")
	}
}

// Backend describes the matrix code in use: "openblas (+K kernel for small products)",
// "go+K" (the assembly kernels, K avx512 or avx2, whichever this CPU runs) or "gonum"
// (portable Go).
func Backend() string {
	switch {
	case BLAS == "openblas":
		return "openblas (+" + defaultKernel.String() + " kernel for small products)"
	case asm.Available:
		return "go+" + defaultKernel.String()
	}
	return "gonum"
}
