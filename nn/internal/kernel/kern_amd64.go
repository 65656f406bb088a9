//go:build amd64 && !noasm

package kernel

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// Kern4x16 is the AVX2/FMA micro-kernel (kern_amd64.s):
//
//	C[i][0:16] = (acc != 0 ? C[i][0:16] : 0) + alpha · Σ_{kk<k} A(i, kk) · B[kk][0:16], i < 4,
//
// where A(i, kk) is at a + 4*(i*sa + kk*sk), B[kk][j] at b + 4*(kk*ldb + j) and C[i][j] at
// c + 4*(i*ldc + j). Call it only when Available.
//
//go:noescape
func Kern4x16(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int, alpha float32)

// Kern4x64 is Kern4x16 for 64 columns with AVX-512F (kern512_amd64.s); it gives the same
// bits as four Kern4x16 calls. Call it only when Available512.
//
//go:noescape
func Kern4x64(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int, alpha float32)

// Available reports whether this CPU runs Kern4x16 (AVX2 and FMA).
var Available = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Available512 reports whether this CPU and operating system run Kern4x64 (AVX-512F, with
// the zmm state saved by the OS, which golang.org/x/sys/cpu checks).
var Available512 = Available && cpu.X86.HasAVX512F

// GeluForward8 writes GELU(x[i]) (tanh form, Eigen's rational tanh) to y[i] for i < n, n a
// multiple of 8; k is &GeluConsts. AVX2 + FMA: call it only when Available.
//
//go:noescape
func GeluForward8(x, y unsafe.Pointer, n int, k unsafe.Pointer)

// GeluBackward8 writes dy[i]·GELU'(x[i]) to dx[i] for i < n, n a multiple of 8; k is
// &GeluConsts. AVX2 + FMA: call it only when Available.
//
//go:noescape
func GeluBackward8(x, dy, dx unsafe.Pointer, n int, k unsafe.Pointer)

// Exp8 writes e^max(x[i], -87.33654) to y[i] for i < n, n a multiple of 8 (y may be x); k
// is &ExpConsts. AVX2 + FMA: call it only when Available.
//
//go:noescape
func Exp8(x, y unsafe.Pointer, n int, k unsafe.Pointer)

// LayerNormRows8 normalises rows rows of d floats each (d a positive multiple of 8) at x
// into y: with m = Σx/d and r = 1/sqrt(Σ(x-m)²/d + eps), y = (x-m)·r·gamma + beta, in
// float32 with 8-lane sums in a fixed order; it stores m and r of each row at mean and
// rstd (rows floats each). invd is 1/d and one is 1. AVX2 + FMA: call it only when
// Available.
//
//go:noescape
func LayerNormRows8(x, y, gamma, beta unsafe.Pointer, rows, d int, invd, eps, one float32, mean, rstd unsafe.Pointer)

// LayerNormBackRows8 is LayerNorm's backward pass for the input over rows rows of d floats
// (d a positive multiple of 8): with m and r the row's saved mean and 1/std (at mean and
// rstd), xhat = (x-m)·r and g = dy·gamma, it writes dx = r·(g - Σg/d - xhat·Σ(g·xhat)/d),
// in float32 with 8-lane sums in a fixed order. invd is 1/d. AVX2 + FMA: call it only
// when Available.
//
//go:noescape
func LayerNormBackRows8(x, dy, gamma, dx unsafe.Pointer, rows, d int, invd float32, mean, rstd unsafe.Pointer)

// LayerNormParamGrads8 adds, row after row over rows rows of d floats (d a positive
// multiple of 8), dy·xhat to dgamma and dy to dbeta, with xhat = (x-m)·r from the row's
// saved mean and 1/std. AVX2 + FMA: call it only when Available.
//
//go:noescape
func LayerNormParamGrads8(x, dy, dgamma, dbeta unsafe.Pointer, rows, d int, mean, rstd unsafe.Pointer)

// Add8 writes a[i] + b[i] to y[i] for i < n, n a multiple of 8 (y may be a or b). AVX2:
// call it only when Available.
//
//go:noescape
func Add8(a, b, y unsafe.Pointer, n int)

// FillRows8 writes b[j] to y[r*ldy + j] for j < o and r < rows, o a positive multiple of
// 8 (a bias broadcast over the rows of a strided matrix). AVX: call it only when
// Available.
//
//go:noescape
func FillRows8(b, y unsafe.Pointer, o, rows, ldy int)

// SumRows8 adds to dst[j] the sum over the rows of the (rows, ld) matrix src of its column
// j, j < o, o a positive multiple of 8, in nn's sumRows order (four rows at a time as
// (r0 + r1) + (r2 + r3), then one at a time): the same bits. AVX: call it only when
// Available.
//
//go:noescape
func SumRows8(src, dst unsafe.Pointer, o, rows, ld int)
