//go:build amd64 && !noasm

#include "textflag.h"

// func Kern4x16(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int, alpha float32)
//
// C[i][0:16] = (acc != 0 ? C[i][0:16] : 0) + alpha * sum over kk < k of A(i, kk) * B[kk][0:16], i < 4,
// where A(i, kk) is at a + 4*(i*sa + kk*sk), B[kk][j] at b + 4*(kk*ldb + j), C[i][j] at
// c + 4*(i*ldc + j). AVX2 + FMA; the caller checks the CPU.
TEXT ·Kern4x16(SB), NOSPLIT, $0-76
	MOVQ a+0(FP), SI
	MOVQ sa+8(FP), AX
	SHLQ $2, AX
	MOVQ sk+16(FP), BX
	SHLQ $2, BX
	MOVQ b+24(FP), DI
	MOVQ ldb+32(FP), R8
	SHLQ $2, R8
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R9
	SHLQ $2, R9
	MOVQ k+56(FP), CX
	LEAQ (SI)(AX*2), R10
	ADDQ AX, R10              // R10 = a + 3*sa: row 3

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7

	TESTQ CX, CX
	JLE   store

loop:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(AX*1), Y11
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(AX*2), Y12
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VBROADCASTSS (R10), Y13
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         R8, DI
	ADDQ         BX, SI
	ADDQ         BX, R10
	DECQ         CX
	JNZ          loop

store:
	VBROADCASTSS alpha+72(FP), Y15
	VMULPS Y15, Y0, Y0
	VMULPS Y15, Y1, Y1
	VMULPS Y15, Y2, Y2
	VMULPS Y15, Y3, Y3
	VMULPS Y15, Y4, Y4
	VMULPS Y15, Y5, Y5
	VMULPS Y15, Y6, Y6
	VMULPS Y15, Y7, Y7
	MOVQ acc+64(FP), CX
	TESTQ CX, CX
	JZ   write
	VADDPS (DX), Y0, Y0
	VADDPS 32(DX), Y1, Y1
	ADDQ   R9, DX
	VADDPS (DX), Y2, Y2
	VADDPS 32(DX), Y3, Y3
	ADDQ   R9, DX
	VADDPS (DX), Y4, Y4
	VADDPS 32(DX), Y5, Y5
	ADDQ   R9, DX
	VADDPS (DX), Y6, Y6
	VADDPS 32(DX), Y7, Y7
	MOVQ   c+40(FP), DX

write:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R9, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R9, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R9, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET
