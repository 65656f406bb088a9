package nn

import (
	asm "github.com/ofa-go/ofa/nn/internal/kernel"
	"sync"
	"unsafe"
)

// sgemmAsmAlpha computes C = alpha·A'·B' + beta·C for float32 with the assembly kernels
// (beta 0 or 1), where A' is A or Aᵀ and B' is B or Bᵀ. It tiles C into 4x64 blocks
// (AVX-512, where the CPU has it) and 4x16 blocks (AVX2); the ragged edges are done in Go.
// The kernels scale the product before adding C. A transposed B (the weights of a linear
// layer, small) is copied into a scratch buffer first, so the kernel always streams rows
// of B. Rows of C are split across goroutines; every element of C is computed by exactly
// one of them, in a fixed order, so results do not depend on the number of threads.
func sgemmAsmAlpha(par int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemmKernel(defaultKernel, par, tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// kernelChoice names the micro-kernels a product may use.
type kernelChoice int

const (
	// kernelAVX2 is Kern4x16 alone (AVX2 + FMA).
	kernelAVX2 kernelChoice = iota
	// kernelAVX512 is Kern4x64 (AVX-512F) for each 64 columns, Kern4x16 for the rest.
	kernelAVX512
)

// defaultKernel is the widest kernel this CPU runs, chosen once at start-up. Both give
// bit-identical products (the same fused multiply-adds in the same order per element),
// so the choice changes speed only, never results.
var defaultKernel = func() kernelChoice {
	if asm.Available512 {
		return kernelAVX512
	}
	return kernelAVX2
}()

// String is the kernel's name as Backend reports it.
func (k kernelChoice) String() string {
	if k == kernelAVX512 {
		return "avx512"
	}
	return "avx2"
}

// sgemmKernel is sgemmAsmAlpha with the micro-kernels chosen by kern.
func sgemmKernel(kern kernelChoice, par int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if tB {
		// Bᵀ is (k, n): copy it row-major into scratch
		buf := scratch.get(k * n)
		defer scratch.put(buf)
		bt := *buf
		transposeInto(bt, b, n, k, ldb)
		b, ldb = bt, n
	}
	sa, sk := lda, 1 // A(i, kk) = a[i*lda + kk]
	if tA {
		sa, sk = 1, lda // A is stored (k, m): A(i, kk) = a[kk*lda + i]
	}
	if beta != 0 && beta != 1 {
		panic("nn: sgemmAsm supports beta 0 or 1")
	}
	// With beta 0 every tile overwrites C with a complete product, so ragged edges can be
	// covered by tiles that overlap the previous ones (recomputing a few values) instead of
	// scalar code; with beta 1 tiles accumulate and must not overlap.
	overwrite := beta == 0 && m >= 4 && n >= 16
	if beta == 0 && !overwrite {
		for i := 0; i < m; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		for i := 0; i < m && overwrite; i++ {
			clear(c[i*ldc : i*ldc+n])
		}
		return
	}
	t := tiling{m: m, n: n, k: k, a: a, sa: sa, sk: sk, b: b, ldb: ldb, c: c, ldc: ldc, overwrite: overwrite, wide: kern == kernelAVX512, alpha: alpha}
	rows := (m + 3) / 4
	if rows*4*n*k*2 < 1<<16 {
		t.rows(0, rows) // small: no goroutines, no closure
		return
	}
	// full blocks in parallel; a ragged last block (which may overlap the one before) after
	full := m / 4
	parallelRows(par, full, 4*n*k*2, t.rows)
	if full < rows {
		t.rows(full, rows)
	}
}

// transposeInto writes the transpose of the (n, k) matrix b (row stride ldb) into dst as a
// row-major (k, n) matrix. Four rows of b at a time, so that each row of dst gets four
// adjacent values per pass.
func transposeInto(dst, b []float32, n, k, ldb int) {
	j := 0
	for ; j+4 <= n; j += 4 {
		r0 := b[j*ldb : j*ldb+k]
		r1 := b[(j+1)*ldb : (j+1)*ldb+k]
		r2 := b[(j+2)*ldb : (j+2)*ldb+k]
		r3 := b[(j+3)*ldb : (j+3)*ldb+k]
		r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)] // bounds hints for the loop
		for kk := range r0 {
			d := dst[kk*n+j : kk*n+j+4 : kk*n+j+4]
			d[0], d[1], d[2], d[3] = r0[kk], r1[kk], r2[kk], r3[kk]
		}
	}
	for ; j < n; j++ {
		row := b[j*ldb : j*ldb+k]
		for kk, v := range row {
			dst[kk*n+j] = v
		}
	}
}

// tiling is one product being computed tile by tile.
type tiling struct {
	m, n, k   int
	a         []float32
	sa, sk    int
	b         []float32
	ldb       int
	c         []float32
	ldc       int
	overwrite bool
	wide      bool // 64-column tiles with Kern4x64 first
	alpha     float32
}

// rows computes row blocks [lo, hi) of C, 4 rows each.
func (t tiling) rows(lo, hi int) {
	for blk := lo; blk < hi; blk++ {
		i := blk * 4
		if i+4 > t.m {
			if !t.overwrite {
				edgeCols(i, t.m, 0, t.n, t.k, t.alpha, t.a, t.sa, t.sk, t.b, t.ldb, t.c, t.ldc)
				continue
			}
			i = t.m - 4 // overlap the previous block
		}
		t.block(i)
	}
}

// block computes rows i..i+3 of C.
func (t tiling) block(i int) {
	acc := 1
	if t.overwrite {
		acc = 0
	}
	j := 0
	for ; t.wide && j+64 <= t.n; j += 64 {
		asm.Kern4x64(unsafe.Pointer(&t.a[i*t.sa]), t.sa, t.sk, unsafe.Pointer(&t.b[j]), t.ldb, unsafe.Pointer(&t.c[i*t.ldc+j]), t.ldc, t.k, acc, t.alpha)
	}
	for ; j+16 <= t.n; j += 16 {
		asm.Kern4x16(unsafe.Pointer(&t.a[i*t.sa]), t.sa, t.sk, unsafe.Pointer(&t.b[j]), t.ldb, unsafe.Pointer(&t.c[i*t.ldc+j]), t.ldc, t.k, acc, t.alpha)
	}
	if j < t.n {
		if t.overwrite {
			j = t.n - 16 // overlap the previous tile
			asm.Kern4x16(unsafe.Pointer(&t.a[i*t.sa]), t.sa, t.sk, unsafe.Pointer(&t.b[j]), t.ldb, unsafe.Pointer(&t.c[i*t.ldc+j]), t.ldc, t.k, 0, t.alpha)
			return
		}
		edgeCols(i, i+4, j, t.n, t.k, t.alpha, t.a, t.sa, t.sk, t.b, t.ldb, t.c, t.ldc)
	}
}

// edgeCols adds alpha·A'·B' into C for rows [r0, r1) and columns [j0, j1) in Go, 16
// columns at a time: each product is summed in a scratch row first, so that alpha scales
// it before C is added, as in the kernels.
func edgeCols(r0, r1, j0, j1, k int, alpha float32, a []float32, sa, sk int, b []float32, ldb int, c []float32, ldc int) {
	var buf [16]float32
	for jc := j0; jc < j1; jc += 16 {
		je := min(jc+16, j1)
		acc := buf[:je-jc]
		for i := r0; i < r1; i++ {
			clear(acc)
			for kk := 0; kk < k; kk++ {
				w := a[i*sa+kk*sk]
				if w == 0 {
					continue
				}
				br := b[kk*ldb+jc : kk*ldb+je]
				for x := range acc {
					acc[x] += w * br[x]
				}
			}
			cr := c[i*ldc+jc : i*ldc+je]
			for x, v := range acc {
				cr[x] += alpha * v
			}
		}
	}
}

// scratchPool recycles transposition buffers.
type scratchPool struct{ p sync.Pool }

var scratch scratchPool

// get returns a buffer of n values; give it back with put.
func (s *scratchPool) get(n int) *[]float32 {
	v, ok := s.p.Get().(*[]float32)
	if !ok {
		v = new([]float32)
	}
	if cap(*v) < n {
		*v = make([]float32, n)
	}
	*v = (*v)[:n]
	return v
}

func (s *scratchPool) put(b *[]float32) { s.p.Put(b) }
