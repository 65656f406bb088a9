package nn

import asm "github.com/ofa-go/ofa/nn/internal/kernel"

// smallGemm is gemm for the attention's tiny per-head products (T x T x dh): the AVX2
// kernel where the CPU has it (in both builds: it beats a cgo call at these sizes), else a
// cgo call to OpenBLAS, else the loops below (gonum's Go gemm is not tuned for such sizes).
func smallGemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if af, ok := any(a).([]float32); ok && asm.Available && (beta == 0 || beta == 1) && !(tA && tB) {
		sgemmAsmAlpha(1, tA, tB, m, n, k, float32(alpha), af, lda, any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
		return
	}
	if BLAS == "openblas" {
		gemm(1, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	if beta != 0 {
		panic("nn: smallGemm supports beta = 0 only")
	}
	switch {
	case !tA && tB: // c[r][col] = alpha * <a row r, b row col>
		for r := 0; r < m; r++ {
			ar := a[r*lda : r*lda+k]
			cr := c[r*ldc : r*ldc+n]
			for col := range cr {
				br := b[col*ldb : col*ldb+k]
				br = br[:len(ar)]
				var acc T
				for j, x := range ar {
					acc += x * br[j]
				}
				cr[col] = alpha * acc
			}
		}
	case !tA && !tB: // c row r = alpha * Σ_j a[r][j] * b row j
		for r := 0; r < m; r++ {
			cr := c[r*ldc : r*ldc+n]
			clear(cr)
			for j, w := range a[r*lda : r*lda+k] {
				w *= alpha
				br := b[j*ldb : j*ldb+n]
				br = br[:len(cr)]
				for x := range cr {
					cr[x] += w * br[x]
				}
			}
		}
	case tA && !tB: // c row r = alpha * Σ_j a[j][r] * b row j
		for r := 0; r < m; r++ {
			clear(c[r*ldc : r*ldc+n])
		}
		for j := 0; j < k; j++ {
			bj := b[j*ldb : j*ldb+n]
			for r, w := range a[j*lda : j*lda+m] {
				if w == 0 {
					continue
				}
				w *= alpha
				cr := c[r*ldc : r*ldc+n]
				cr = cr[:len(bj)]
				for x := range bj {
					cr[x] += w * bj[x]
				}
			}
		}
	default:
		gemm(1, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	}
}
