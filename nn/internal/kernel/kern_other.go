//go:build noasm || !amd64

package kernel

import "unsafe"

// Available is false: there is no assembly kernel for this platform or build.
const Available = false

// Available512 is false: there is no assembly kernel for this platform or build.
const Available512 = false

// Kern4x16 is not available here.
func Kern4x16(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int, alpha float32) {
	panic("kernel: no assembly kernel in this build")
}

// Kern4x64 is not available here.
func Kern4x64(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int, alpha float32) {
	panic("kernel: no assembly kernel in this build")
}

// GeluForward8 is not available here.
func GeluForward8(x, y unsafe.Pointer, n int, k unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// GeluBackward8 is not available here.
func GeluBackward8(x, dy, dx unsafe.Pointer, n int, k unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// Exp8 is not available here.
func Exp8(x, y unsafe.Pointer, n int, k unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// LayerNormRows8 is not available here.
func LayerNormRows8(x, y, gamma, beta unsafe.Pointer, rows, d int, invd, eps, one float32, mean, rstd unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// LayerNormBackRows8 is not available here.
func LayerNormBackRows8(x, dy, gamma, dx unsafe.Pointer, rows, d int, invd float32, mean, rstd unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// LayerNormParamGrads8 is not available here.
func LayerNormParamGrads8(x, dy, dgamma, dbeta unsafe.Pointer, rows, d int, mean, rstd unsafe.Pointer) {
	panic("kernel: no assembly kernel in this build")
}

// Add8 is not available here.
func Add8(a, b, y unsafe.Pointer, n int) {
	panic("kernel: no assembly kernel in this build")
}

// FillRows8 is not available here.
func FillRows8(b, y unsafe.Pointer, o, rows, ldy int) {
	panic("kernel: no assembly kernel in this build")
}

// SumRows8 is not available here.
func SumRows8(src, dst unsafe.Pointer, o, rows, ld int) {
	panic("kernel: no assembly kernel in this build")
}
