//go:build amd64 && !noasm

#include "textflag.h"

// The GELU kernels (tanh form) on 8 floats at a time, AVX2 + FMA. k points to the vector
// constants of GeluConsts (8 copies of each, 32 bytes apart); the offsets below follow
// its order. With vc = clamp(v, -5.2, 5.2), u = clamp(c·vc·(1 + a·vc²), ±7.905) and
// t = p(u)/q(u) (Eigen's rational tanh):
//
//	GeluForward8:  y  = 0.5·vc·(1 + t) + max(v - 5.2, 0)
//	GeluBackward8: dx = dy · (0.5·(1 + t) + 0.5·c·vc·(1 - t²)·(1 + 3a·vc²))
//
// NaN inputs give NaN outputs (the clamps keep a NaN operand). Near saturation (|v| about
// 5) t is within a float32 ulp of ±1, so 1 - t² carries an absolute error of about 1e-7
// and the derivative one of up to 5e-6; the values stay within 1e-6.
#define KA 0
#define KC 32
#define KCU 64
#define KNCU 96
#define KA13 128
#define KA11 160
#define KA9 192
#define KA7 224
#define KA5 256
#define KA3 288
#define KA1 320
#define KB6 352
#define KB4 384
#define KB2 416
#define KB0 448
#define K3A 480
#define KHC 512
#define KHALF 544
#define KONE 576
#define KHI 608
#define KLO 640

// TANH computes, from v in Y0: vc in Y1, vc² in Y2 and t in Y7 (uses Y3-Y6).
#define TANH \
	VMINPS       Y0, Y14, Y1; \
	VMAXPS       Y1, Y15, Y1; \
	VMULPS       Y1, Y1, Y2; \
	VMULPS       KA(R11), Y2, Y3; \
	VADDPS       Y12, Y3, Y3; \
	VMULPS       Y1, Y3, Y3; \
	VMULPS       KC(R11), Y3, Y3; \
	VMINPS       KCU(R11), Y3, Y3; \
	VMAXPS       KNCU(R11), Y3, Y3; \
	VMULPS       Y3, Y3, Y4; \
	VMOVUPS      KA13(R11), Y5; \
	VFMADD213PS  KA11(R11), Y4, Y5; \
	VFMADD213PS  KA9(R11), Y4, Y5; \
	VFMADD213PS  KA7(R11), Y4, Y5; \
	VFMADD213PS  KA5(R11), Y4, Y5; \
	VFMADD213PS  KA3(R11), Y4, Y5; \
	VFMADD213PS  KA1(R11), Y4, Y5; \
	VMULPS       Y3, Y5, Y5; \
	VMOVUPS      KB6(R11), Y6; \
	VFMADD213PS  KB4(R11), Y4, Y6; \
	VFMADD213PS  KB2(R11), Y4, Y6; \
	VFMADD213PS  KB0(R11), Y4, Y6; \
	VDIVPS       Y6, Y5, Y7

#define CONSTS \
	VMOVUPS KHALF(R11), Y11; \
	VMOVUPS KONE(R11), Y12; \
	VXORPS  Y13, Y13, Y13; \
	VMOVUPS KHI(R11), Y14; \
	VMOVUPS KLO(R11), Y15

// func GeluForward8(x, y unsafe.Pointer, n int, k unsafe.Pointer)
TEXT ·GeluForward8(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R11
	CONSTS
	SHRQ $3, CX
	JZ   fdone

floop:
	VMOVUPS (SI), Y0
	TANH
	VADDPS  Y12, Y7, Y7
	VMULPS  Y1, Y7, Y7
	VMULPS  Y11, Y7, Y7
	VSUBPS  Y14, Y0, Y8
	VMAXPS  Y13, Y8, Y8
	VADDPS  Y8, Y7, Y7
	VMOVUPS Y7, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     floop

fdone:
	VZEROUPPER
	RET

// func GeluBackward8(x, dy, dx unsafe.Pointer, n int, k unsafe.Pointer)
TEXT ·GeluBackward8(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ dy+8(FP), DX
	MOVQ dx+16(FP), DI
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), R11
	CONSTS
	SHRQ $3, CX
	JZ   bdone

bloop:
	VMOVUPS     (SI), Y0
	TANH
	VMULPS      Y7, Y7, Y8
	VSUBPS      Y8, Y12, Y8
	VMULPS      K3A(R11), Y2, Y9
	VADDPS      Y12, Y9, Y9
	VMULPS      Y9, Y8, Y8
	VMULPS      Y1, Y8, Y8
	VMULPS      KHC(R11), Y8, Y8
	VFMADD213PS Y11, Y11, Y7
	VADDPS      Y8, Y7, Y7
	VMULPS      (DX), Y7, Y7
	VMOVUPS     Y7, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         bloop

bdone:
	VZEROUPPER
	RET
