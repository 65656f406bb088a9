//go:build noasm || !amd64

package train

import "unsafe"

// adamwAsm is false: no assembly in this build.
const adamwAsm = false

// adamw4 is not available here.
func adamw4(p, grad, m, v unsafe.Pointer, n int, k *adamwConsts) {
	panic("train: no assembly AdamW in this build")
}
