//go:build amd64 && !noasm

#include "textflag.h"

// func Kern4x64(a unsafe.Pointer, sa, sk int, b unsafe.Pointer, ldb int, c unsafe.Pointer, ldc int, k int, acc int)
//
// Kern4x16's contract for 64 columns: C[i][0:64] = (acc != 0 ? C[i][0:64] : 0) + sum over
// kk < k of A(i, kk) * B[kk][0:64], i < 4. AVX-512F: 16 zmm accumulators (Z0-Z15, row r
// and column chunk q in Z(4r+q)), 4 zmm loads of B and 4 broadcasts of A per kk. Every
// element is accumulated in the same order with the same fused multiply-adds as Kern4x16,
// so both kernels give bit-identical results. The caller checks the CPU.
TEXT ·Kern4x64(SB), NOSPLIT, $0-72
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

	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

	TESTQ CX, CX
	JLE   store

loop:
	VMOVUPS      (DI), Z16
	VMOVUPS      64(DI), Z17
	VMOVUPS      128(DI), Z18
	VMOVUPS      192(DI), Z19
	VBROADCASTSS (SI), Z20
	VFMADD231PS  Z16, Z20, Z0
	VFMADD231PS  Z17, Z20, Z1
	VFMADD231PS  Z18, Z20, Z2
	VFMADD231PS  Z19, Z20, Z3
	VBROADCASTSS (SI)(AX*1), Z21
	VFMADD231PS  Z16, Z21, Z4
	VFMADD231PS  Z17, Z21, Z5
	VFMADD231PS  Z18, Z21, Z6
	VFMADD231PS  Z19, Z21, Z7
	VBROADCASTSS (SI)(AX*2), Z22
	VFMADD231PS  Z16, Z22, Z8
	VFMADD231PS  Z17, Z22, Z9
	VFMADD231PS  Z18, Z22, Z10
	VFMADD231PS  Z19, Z22, Z11
	VBROADCASTSS (R10), Z23
	VFMADD231PS  Z16, Z23, Z12
	VFMADD231PS  Z17, Z23, Z13
	VFMADD231PS  Z18, Z23, Z14
	VFMADD231PS  Z19, Z23, Z15
	ADDQ         R8, DI
	ADDQ         BX, SI
	ADDQ         BX, R10
	DECQ         CX
	JNZ          loop

store:
	MOVQ  acc+64(FP), CX
	TESTQ CX, CX
	JZ    write
	VADDPS (DX), Z0, Z0
	VADDPS 64(DX), Z1, Z1
	VADDPS 128(DX), Z2, Z2
	VADDPS 192(DX), Z3, Z3
	ADDQ   R9, DX
	VADDPS (DX), Z4, Z4
	VADDPS 64(DX), Z5, Z5
	VADDPS 128(DX), Z6, Z6
	VADDPS 192(DX), Z7, Z7
	ADDQ   R9, DX
	VADDPS (DX), Z8, Z8
	VADDPS 64(DX), Z9, Z9
	VADDPS 128(DX), Z10, Z10
	VADDPS 192(DX), Z11, Z11
	ADDQ   R9, DX
	VADDPS (DX), Z12, Z12
	VADDPS 64(DX), Z13, Z13
	VADDPS 128(DX), Z14, Z14
	VADDPS 192(DX), Z15, Z15
	MOVQ   c+40(FP), DX

write:
	VMOVUPS Z0, (DX)
	VMOVUPS Z1, 64(DX)
	VMOVUPS Z2, 128(DX)
	VMOVUPS Z3, 192(DX)
	ADDQ    R9, DX
	VMOVUPS Z4, (DX)
	VMOVUPS Z5, 64(DX)
	VMOVUPS Z6, 128(DX)
	VMOVUPS Z7, 192(DX)
	ADDQ    R9, DX
	VMOVUPS Z8, (DX)
	VMOVUPS Z9, 64(DX)
	VMOVUPS Z10, 128(DX)
	VMOVUPS Z11, 192(DX)
	ADDQ    R9, DX
	VMOVUPS Z12, (DX)
	VMOVUPS Z13, 64(DX)
	VMOVUPS Z14, 128(DX)
	VMOVUPS Z15, 192(DX)
	VZEROUPPER
	RET
