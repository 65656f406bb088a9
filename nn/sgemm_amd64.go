//go:build !openblas && !noasm

package nn

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// kern4x16 is the AVX2/FMA micro-kernel (sgemm_amd64.s).
//
//go:noescape
func kern4x16(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int)

// haveAsmGemm reports whether the pure-Go build can use the assembly kernel here.
var haveAsmGemm = cpu.X86.HasAVX2 && cpu.X86.HasFMA
