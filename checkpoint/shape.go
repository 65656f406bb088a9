package checkpoint

import (
	"fmt"
	"math"
)

// dtypeF32 is the only dtype this package reads and writes.
const dtypeF32 = "F32"

// metadataKey is the reserved header key holding the string metadata.
const metadataKey = "__metadata__"

// maxElements bounds a tensor's element count so that its byte size (4 per element) fits
// in an int64 and its element count in an int (for make on 32-bit platforms).
const maxElements = min(math.MaxInt64/4, math.MaxInt)

// numElements returns how many values a tensor of the given shape holds: 1 for a scalar
// (empty shape), 0 when any dimension is 0. It fails on a negative dimension, and when the
// product of the non-zero dimensions exceeds maxElements, even if another dimension is 0:
// such a shape cannot describe real data and would overflow readers that multiply in order.
func numElements(shape []int) (int64, error) {
	n, zero := int64(1), false
	for _, d := range shape {
		switch {
		case d < 0:
			return 0, fmt.Errorf("shape %v has negative dimension %d", shape, d)
		case d == 0:
			zero = true
		case n > maxElements/int64(d):
			return 0, fmt.Errorf("shape %v overflows: more than %d elements", shape, int64(maxElements))
		default:
			n *= int64(d)
		}
	}
	if zero {
		return 0, nil
	}
	return n, nil
}

// unravel converts a flat row-major element index into one index per dimension, for
// error messages.
func unravel(flat int64, shape []int) []int {
	idx := make([]int, len(shape))
	for i := len(shape) - 1; i >= 0; i-- {
		d := int64(shape[i])
		idx[i] = int(flat % d)
		flat /= d
	}
	return idx
}
