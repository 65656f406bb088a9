package nn

import (
	"fmt"
	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestSgemmAsm compares the assembly kernel paths (AVX2 alone, and AVX-512 where the CPU
// has it) with gonum's reference Sgemm on shapes with ragged edges, every transpose case
// the kernels use, both betas and scaled products; the two paths must agree bit for bit.
func TestSgemmAsm(t *testing.T) {
	if !asm.Available {
		t.Skip("no AVX2/FMA kernel in this build or on this CPU")
	}
	kernels := []kernelChoice{kernelAVX2}
	if asm.Available512 {
		kernels = append(kernels, kernelAVX512)
	} else {
		t.Log("no AVX-512 on this CPU: the AVX-512 kernel is not tested here")
	}
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	for _, sh := range [][3]int{{1, 1, 1}, {4, 16, 1}, {5, 17, 3}, {64, 64, 64}, {1088, 192, 64}, {37, 10, 256}, {7, 33, 0}, {131, 48, 40}, {9, 130, 33}, {5, 80, 7}, {4, 64, 1}, {6, 64, 300}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}} {
			for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.37, 0}, {-1.5, 1}} {
				alpha, beta := ab[0], ab[1]
				name := fmt.Sprintf("%dx%dx%d/tA=%t,tB=%t/alpha=%v,beta=%v", m, n, k, tr[0], tr[1], alpha, beta)
				lda, ldb, ldc := k+3, n+2, n+5
				if tr[0] {
					lda = m + 3
				}
				if tr[1] {
					ldb = k + 2
				}
				arows, brows := m, k
				if tr[0] {
					arows = k
				}
				if tr[1] {
					brows = n
				}
				a, b := fill(max(arows, 1)*lda), fill(max(brows, 1)*ldb)
				c0 := fill(m * ldc)
				want := append([]float32(nil), c0...)
				gonum.Implementation{}.Sgemm(trans(tr[0]), trans(tr[1]), m, n, k, alpha, a, lda, b, ldb, beta, want, ldc)
				var first []float32
				for _, kern := range kernels {
					name := name + "/" + kern.String()
					c := append([]float32(nil), c0...)
					sgemmKernel(kern, 0, tr[0], tr[1], m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					if first == nil {
						first = c
					}
					for i := range c {
						if math.Float32bits(c[i]) != math.Float32bits(first[i]) {
							t.Fatalf("%s: C[%d] = %v, the AVX2 kernel gave %v", name, i, c[i], first[i])
						}
					}
					for i := 0; i < m; i++ {
						for j := 0; j < ldc; j++ {
							g, w := c[i*ldc+j], want[i*ldc+j]
							if j >= n && g != w {
								t.Fatalf("%s: wrote outside C at (%d,%d)", name, i, j)
							}
							if math.Abs(float64(g-w)) > 1e-4*(1+math.Abs(float64(w))) {
								t.Fatalf("%s: C[%d][%d] = %v, want %v", name, i, j, g, w)
							}
						}
					}
				}
			}
		}
	}
	_ = blas.NoTrans
}

// BenchmarkSgemmAsmLinear times fc1's forward product (1088 x 64 by 64 x 256, the weights
// transposed) with each kernel this CPU runs.
func BenchmarkSgemmAsmLinear(b *testing.B) {
	if !asm.Available {
		b.Skip("no kernel")
	}
	kernels := []kernelChoice{kernelAVX2}
	if asm.Available512 {
		kernels = append(kernels, kernelAVX512)
	}
	for _, sh := range [][3]int{{1088, 256, 64}, {1088, 64, 256}} {
		m, n, k := sh[0], sh[1], sh[2]
		for _, kern := range kernels {
			b.Run(fmt.Sprintf("%dx%dx%d/%s", m, n, k, kern), func(b *testing.B) {
				a, w, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
				b.SetBytes(int64(2 * m * n * k)) // "bytes" = flops, so MB/s reads as MFLOP/s
				for i := 0; i < b.N; i++ {
					sgemmKernel(kern, 0, false, true, m, n, k, 1, a, k, w, k, 0, c, n)
				}
			})
		}
	}
}

func BenchmarkSgemmGonumLinear(b *testing.B) {
	m, n, k := 1088, 256, 64
	a, w, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
	b.SetBytes(int64(2 * m * n * k))
	for i := 0; i < b.N; i++ {
		gonum.Implementation{}.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, w, k, 0, c, n)
	}
}

// TestTransposeInto: the four-rows-at-a-time transpose writes exactly the transpose, for row
// counts that are and are not multiples of four and a row stride wider than the rows.
func TestTransposeInto(t *testing.T) {
	for _, n := range []int{1, 3, 4, 7, 17} {
		const k, ldb = 5, 9
		b := make([]float32, n*ldb)
		for i := range b {
			b[i] = float32(i) + 0.5
		}
		dst := make([]float32, k*n)
		transposeInto(dst, b, n, k, ldb)
		for j := 0; j < n; j++ {
			for kk := 0; kk < k; kk++ {
				if got, want := dst[kk*n+j], b[j*ldb+kk]; got != want {
					t.Fatalf("n %d: dst[%d][%d] = %v, want %v", n, kk, j, got, want)
				}
			}
		}
	}
}
