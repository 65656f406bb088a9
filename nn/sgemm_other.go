//go:build openblas || noasm || !amd64

package nn

import "unsafe"

const haveAsmGemm = false

func kern4x16(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int) {
	panic("nn: no assembly kernel in this build")
}
