//go:build amd64 && !noasm

#include "textflag.h"

// func adamw4(p, grad, m, v unsafe.Pointer, n int, k *adamwConsts)
//
// For i < n, four at a time in float64 (AVX), as AdamW.update's loop computes them:
//   mt = b1*m + (1-b1)*g;  vt = b2*v + ((1-b2)*g)*g;  m, v = float32(mt), float32(vt)
//   p = float32(p*shrink - (lr*(mt/c1)) / (sqrt(vt/c2) + eps))
// k: b1, 1-b1, b2, 1-b2, shrink, lr, c1, c2, eps (float64 each).
TEXT ·adamw4(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ grad+8(FP), DI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ k+40(FP), DX
	VBROADCASTSD 0(DX), Y8    // b1
	VBROADCASTSD 8(DX), Y9    // 1-b1
	VBROADCASTSD 16(DX), Y10  // b2
	VBROADCASTSD 24(DX), Y11  // 1-b2
	VBROADCASTSD 32(DX), Y12  // shrink
	VBROADCASTSD 40(DX), Y13  // lr
	VBROADCASTSD 48(DX), Y14  // c1
	VBROADCASTSD 56(DX), Y15  // c2
	VBROADCASTSD 64(DX), Y7   // eps
	XORQ BX, BX

loop:
	CMPQ       BX, CX
	JAE        done
	VCVTPS2PD  (DI)(BX*4), Y0 // g
	VCVTPS2PD  (R8)(BX*4), Y1 // m
	VCVTPS2PD  (R9)(BX*4), Y2 // v
	VMULPD     Y8, Y1, Y1     // b1*m
	VMULPD     Y9, Y0, Y3     // (1-b1)*g
	VADDPD     Y3, Y1, Y1     // mt
	VMULPD     Y10, Y2, Y2    // b2*v
	VMULPD     Y11, Y0, Y4    // (1-b2)*g
	VMULPD     Y0, Y4, Y4     // ((1-b2)*g)*g
	VADDPD     Y4, Y2, Y2     // vt
	VCVTPD2PSY Y1, X5
	VMOVUPS    X5, (R8)(BX*4)
	VCVTPD2PSY Y2, X6
	VMOVUPS    X6, (R9)(BX*4)
	VDIVPD     Y14, Y1, Y1    // mt/c1
	VMULPD     Y13, Y1, Y1    // lr*(mt/c1)
	VDIVPD     Y15, Y2, Y2    // vt/c2
	VSQRTPD    Y2, Y2
	VADDPD     Y7, Y2, Y2     // sqrt(vt/c2) + eps
	VDIVPD     Y2, Y1, Y1     // the step
	VCVTPS2PD  (SI)(BX*4), Y3 // p
	VMULPD     Y12, Y3, Y3    // p*shrink
	VSUBPD     Y1, Y3, Y3     // p*shrink - step
	VCVTPD2PSY Y3, X3
	VMOVUPS    X3, (SI)(BX*4)
	ADDQ       $4, BX
	JMP        loop

done:
	VZEROUPPER
	RET
