//go:build amd64 && !noasm

#include "textflag.h"

// func Exp8(x, y unsafe.Pointer, n int, k unsafe.Pointer)
//
// y[i] = e^max(x[i], -87.33654) for i < n, n a multiple of 8; AVX2 + FMA. The arithmetic
// of expShift32 (attention.go), 8 values at a time: x = f·ln2 + r with f = round(x·log2 e)
// (ln2 split in two for precision), e^r from Cephes' expf polynomial and 2^f from the
// exponent bits. For the arguments of softmax rows (x ≤ 0) it is within 2 float32 ulps of
// e^x; NaN stays NaN (the clamp keeps a NaN operand). k points to ExpConsts (8 copies of
// each constant, 32 bytes apart), in the order of the offsets below.
#define KLO 0
#define KLOG2E 32
#define KROUND 64
#define KC1 96
#define KC2 128
#define KP0 160
#define KP1 192
#define KP2 224
#define KP3 256
#define KP4 288
#define KP5 320
#define KONE 352
#define KBIAS 384

TEXT ·Exp8(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R11
	VMOVUPS KLO(R11), Y10
	VMOVUPS KLOG2E(R11), Y11
	VMOVUPS KROUND(R11), Y12
	VMOVUPS KONE(R11), Y13
	VMOVDQU KBIAS(R11), Y14
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS      (SI), Y0
	VMAXPS       Y0, Y10, Y0          // v = max(x, lo), NaN kept
	VMULPS       Y11, Y0, Y1          // v·log2e
	VADDPS       Y12, Y1, Y1
	VSUBPS       Y12, Y1, Y1          // f = round(v·log2e)
	VMOVAPS      Y0, Y2
	VFNMADD231PS KC1(R11), Y1, Y2     // r = v - f·c1
	VFNMADD231PS KC2(R11), Y1, Y2     // r -= f·c2
	VMOVUPS      KP0(R11), Y3
	VFMADD213PS  KP1(R11), Y2, Y3     // p = p·r + coefficient
	VFMADD213PS  KP2(R11), Y2, Y3
	VFMADD213PS  KP3(R11), Y2, Y3
	VFMADD213PS  KP4(R11), Y2, Y3
	VFMADD213PS  KP5(R11), Y2, Y3
	VMULPS       Y2, Y2, Y4           // r²
	VFMADD213PS  Y2, Y4, Y3           // p·r² + r
	VADDPS       Y13, Y3, Y3          // + 1
	VCVTPS2DQ    Y1, Y5               // f as int32 (already integral)
	VPADDD       Y14, Y5, Y5          // + 127
	VPSLLD       $23, Y5, Y5          // 2^f
	VMULPS       Y5, Y3, Y3
	VMOVUPS      Y3, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNZ          loop

done:
	VZEROUPPER
	RET
