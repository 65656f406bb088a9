//go:build amd64 && !noasm

package train

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// adamwAsm reports whether adamw4 runs on this CPU (AVX).
var adamwAsm = cpu.X86.HasAVX

// adamw4 is AdamW.update's loop for n values (n a multiple of 4), four at a time in
// float64 with the same operations in the same order (adamw_amd64.s), so the same bits; k
// holds the loop's constants.
//
//go:noescape
func adamw4(p, grad, m, v unsafe.Pointer, n int, k *adamwConsts)
