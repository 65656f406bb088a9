//go:build amd64 && !noasm

#include "textflag.h"

// HSUM leaves the sum of y's 8 lanes in x's lowest lane (x is y's low half; t is
// clobbered), in a fixed order: the two halves, then lanes 0+2 / 1+3, then 0+1.
#define HSUM(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS       t, x, x; \
	VMOVHLPS     x, x, t; \
	VADDPS       t, x, x; \
	VSHUFPS      $0x55, x, x, t; \
	VADDSS       t, x, x

// func LayerNormRows8(x, y, gamma, beta unsafe.Pointer, rows, d int, invd, eps, one float32, mean, rstd unsafe.Pointer)
//
// For each of rows rows of d floats (d a positive multiple of 8): m = Σx/d,
// v = Σ(x-m)²/d, r = 1/sqrt(v + eps); y = (x-m)·r·gamma + beta; mean[row] = m,
// rstd[row] = r.
TEXT ·LayerNormRows8(SB), NOSPLIT, $0-80
	MOVQ   x+0(FP), SI
	MOVQ   y+8(FP), DI
	MOVQ   gamma+16(FP), R8
	MOVQ   beta+24(FP), R9
	MOVQ   rows+32(FP), CX
	MOVQ   d+40(FP), DX
	VMOVSS invd+48(FP), X15
	VMOVSS eps+52(FP), X14
	VMOVSS one+56(FP), X13
	MOVQ   mean+64(FP), R10
	MOVQ   rstd+72(FP), R12
	SHLQ   $2, DX // bytes per row
	TESTQ  CX, CX
	JZ     done

row:
	VXORPS Y0, Y0, Y0
	XORQ   BX, BX

sum:
	VADDPS (SI)(BX*1), Y0, Y0
	ADDQ   $32, BX
	CMPQ   BX, DX
	JB     sum
	HSUM(Y0, X0, X1)
	VMULSS       X15, X0, X0 // mean
	VBROADCASTSS X0, Y2
	VXORPS       Y3, Y3, Y3
	XORQ         BX, BX

dev:
	VMOVUPS     (SI)(BX*1), Y4
	VSUBPS      Y2, Y4, Y4
	VFMADD231PS Y4, Y4, Y3
	ADDQ        $32, BX
	CMPQ        BX, DX
	JB          dev
	HSUM(Y3, X3, X1)
	VMULSS       X15, X3, X3 // variance
	VADDSS       X14, X3, X3
	VSQRTSS      X3, X3, X3
	VDIVSS       X3, X13, X5 // 1/sqrt(variance + eps)
	VMOVSS       X0, (R10)
	VMOVSS       X5, (R12)
	VBROADCASTSS X5, Y6
	XORQ         BX, BX

norm:
	VMOVUPS     (SI)(BX*1), Y4
	VSUBPS      Y2, Y4, Y4
	VMULPS      Y6, Y4, Y4
	VMOVUPS     (R8)(BX*1), Y7
	VFMADD213PS (R9)(BX*1), Y7, Y4 // gamma·xhat + beta
	VMOVUPS     Y4, (DI)(BX*1)
	ADDQ        $32, BX
	CMPQ        BX, DX
	JB          norm

	ADDQ DX, SI
	ADDQ DX, DI
	ADDQ $4, R10
	ADDQ $4, R12
	DECQ CX
	JNZ  row

done:
	VZEROUPPER
	RET

// func Add8(a, b, y unsafe.Pointer, n int)
//
// y[i] = a[i] + b[i] for i < n, n a multiple of 8 (y may be a or b).
TEXT ·Add8(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), R8
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHLQ $2, CX
	XORQ BX, BX
	CMPQ CX, $128
	JB   tail

quad:
	VMOVUPS (SI)(BX*1), Y0
	VMOVUPS 32(SI)(BX*1), Y1
	VMOVUPS 64(SI)(BX*1), Y2
	VMOVUPS 96(SI)(BX*1), Y3
	VADDPS  (R8)(BX*1), Y0, Y0
	VADDPS  32(R8)(BX*1), Y1, Y1
	VADDPS  64(R8)(BX*1), Y2, Y2
	VADDPS  96(R8)(BX*1), Y3, Y3
	VMOVUPS Y0, (DI)(BX*1)
	VMOVUPS Y1, 32(DI)(BX*1)
	VMOVUPS Y2, 64(DI)(BX*1)
	VMOVUPS Y3, 96(DI)(BX*1)
	ADDQ    $128, BX
	LEAQ    128(BX), AX
	CMPQ    AX, CX
	JBE     quad

tail:
	CMPQ BX, CX
	JAE  adone

one:
	VMOVUPS (SI)(BX*1), Y0
	VADDPS  (R8)(BX*1), Y0, Y0
	VMOVUPS Y0, (DI)(BX*1)
	ADDQ    $32, BX
	CMPQ    BX, CX
	JB      one

adone:
	VZEROUPPER
	RET

// func FillRows8(b, y unsafe.Pointer, o, rows, ldy int)
//
// y[r*ldy + j] = b[j] for j < o and r < rows, o a positive multiple of 8.
TEXT ·FillRows8(SB), NOSPLIT, $0-40
	MOVQ b+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ o+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ ldy+32(FP), R8
	SHLQ $2, DX
	SHLQ $2, R8
	TESTQ CX, CX
	JZ   fdone

frow:
	XORQ BX, BX

fcol:
	VMOVUPS (SI)(BX*1), Y0
	VMOVUPS Y0, (DI)(BX*1)
	ADDQ    $32, BX
	CMPQ    BX, DX
	JB      fcol
	ADDQ    R8, DI
	DECQ    CX
	JNZ     frow

fdone:
	VZEROUPPER
	RET

// func LayerNormBackRows8(x, dy, gamma, dx unsafe.Pointer, rows, d int, invd float32, mean, rstd unsafe.Pointer)
//
// For each of rows rows of d floats (d a positive multiple of 8), with m and r the row's
// saved mean and 1/std, xhat = (x-m)·r and g = dy·gamma: s1 = Σg/d, s2 = Σg·xhat/d and
// dx = r·(g - s1 - xhat·s2).
TEXT ·LayerNormBackRows8(SB), NOSPLIT, $0-72
	MOVQ   x+0(FP), SI
	MOVQ   dy+8(FP), R8
	MOVQ   gamma+16(FP), R9
	MOVQ   dx+24(FP), DI
	MOVQ   rows+32(FP), CX
	MOVQ   d+40(FP), DX
	VMOVSS invd+48(FP), X15
	MOVQ   mean+56(FP), R10
	MOVQ   rstd+64(FP), R12
	SHLQ   $2, DX // bytes per row
	TESTQ  CX, CX
	JZ     bdone

brow:
	VBROADCASTSS (R10), Y2 // m
	VBROADCASTSS (R12), Y6 // r
	VXORPS       Y0, Y0, Y0 // Σg
	VXORPS       Y3, Y3, Y3 // Σg·xhat
	XORQ         BX, BX

bsum:
	VMOVUPS     (R8)(BX*1), Y4
	VMULPS      (R9)(BX*1), Y4, Y4 // g
	VADDPS      Y4, Y0, Y0
	VMOVUPS     (SI)(BX*1), Y5
	VSUBPS      Y2, Y5, Y5
	VMULPS      Y6, Y5, Y5 // xhat
	VFMADD231PS Y4, Y5, Y3
	ADDQ        $32, BX
	CMPQ        BX, DX
	JB          bsum
	HSUM(Y0, X0, X1)
	HSUM(Y3, X3, X1)
	VMULSS       X15, X0, X0
	VMULSS       X15, X3, X3
	VBROADCASTSS X0, Y0 // s1
	VBROADCASTSS X3, Y3 // s2
	XORQ         BX, BX

bdx:
	VMOVUPS      (SI)(BX*1), Y5
	VSUBPS       Y2, Y5, Y5
	VMULPS       Y6, Y5, Y5 // xhat
	VMOVUPS      (R8)(BX*1), Y4
	VMULPS       (R9)(BX*1), Y4, Y4 // g
	VSUBPS       Y0, Y4, Y4         // g - s1
	VFNMADD231PS Y5, Y3, Y4         // g - s1 - xhat·s2
	VMULPS       Y6, Y4, Y4
	VMOVUPS      Y4, (DI)(BX*1)
	ADDQ         $32, BX
	CMPQ         BX, DX
	JB           bdx

	ADDQ DX, SI
	ADDQ DX, R8
	ADDQ DX, DI
	ADDQ $4, R10
	ADDQ $4, R12
	DECQ CX
	JNZ  brow

bdone:
	VZEROUPPER
	RET

// func LayerNormParamGrads8(x, dy, dgamma, dbeta unsafe.Pointer, rows, d int, mean, rstd unsafe.Pointer)
//
// Adds, row after row, dy·xhat to dgamma and dy to dbeta (d floats each, d a positive
// multiple of 8), with xhat = (x-m)·r from the row's saved mean and 1/std.
TEXT ·LayerNormParamGrads8(SB), NOSPLIT, $0-64
	MOVQ  x+0(FP), SI
	MOVQ  dy+8(FP), R8
	MOVQ  dgamma+16(FP), R9
	MOVQ  dbeta+24(FP), R11
	MOVQ  rows+32(FP), CX
	MOVQ  d+40(FP), DX
	MOVQ  mean+48(FP), R10
	MOVQ  rstd+56(FP), R12
	SHLQ  $2, DX
	TESTQ CX, CX
	JZ    pdone

prow:
	VBROADCASTSS (R10), Y2
	VBROADCASTSS (R12), Y6
	XORQ         BX, BX

pcol:
	VMOVUPS     (SI)(BX*1), Y5
	VSUBPS      Y2, Y5, Y5
	VMULPS      Y6, Y5, Y5 // xhat
	VMOVUPS     (R8)(BX*1), Y4 // dy
	VMOVUPS     (R9)(BX*1), Y7
	VFMADD231PS Y5, Y4, Y7
	VMOVUPS     Y7, (R9)(BX*1)
	VADDPS      (R11)(BX*1), Y4, Y4
	VMOVUPS     Y4, (R11)(BX*1)
	ADDQ        $32, BX
	CMPQ        BX, DX
	JB          pcol

	ADDQ DX, SI
	ADDQ DX, R8
	ADDQ $4, R10
	ADDQ $4, R12
	DECQ CX
	JNZ  prow

pdone:
	VZEROUPPER
	RET

// func SumRows8(src, dst unsafe.Pointer, o, rows, ld int)
//
// dst[j] += the column sums of the rows x ld matrix src, j < o (o a positive multiple of 8),
// in sumRows' order: four rows at a time as (r0 + r1) + (r2 + r3), then the remaining
// rows one by one. 32 columns at a time in Y0-Y3, then 8 at a time in Y0.
TEXT ·SumRows8(SB), NOSPLIT, $0-40
	MOVQ src+0(FP), SI
	MOVQ dst+8(FP), DI
	MOVQ o+16(FP), CX
	SHLQ $2, CX               // CX = o in bytes
	MOVQ rows+24(FP), DX
	MOVQ ld+32(FP), R8
	SHLQ $2, R8               // R8 = row stride in bytes
	LEAQ (R8)(R8*2), R9       // R9 = 3 strides
	MOVQ R8, R10
	SHLQ $2, R10              // R10 = 4 strides
	XORQ BX, BX               // BX = column offset in bytes

col32:
	LEAQ    128(BX), AX
	CMPQ    AX, CX
	JA      col8
	VMOVUPS (DI)(BX*1), Y0
	VMOVUPS 32(DI)(BX*1), Y1
	VMOVUPS 64(DI)(BX*1), Y2
	VMOVUPS 96(DI)(BX*1), Y3
	LEAQ    (SI)(BX*1), R11
	MOVQ    DX, R12

quad32:
	CMPQ R12, $4
	JL   one32
	VMOVUPS 0(R11), Y4
	VADDPS  0(R11)(R8*1), Y4, Y4
	VMOVUPS 0(R11)(R8*2), Y5
	VADDPS  0(R11)(R9*1), Y5, Y5
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y0, Y0
	VMOVUPS 32(R11), Y4
	VADDPS  32(R11)(R8*1), Y4, Y4
	VMOVUPS 32(R11)(R8*2), Y5
	VADDPS  32(R11)(R9*1), Y5, Y5
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y1, Y1
	VMOVUPS 64(R11), Y4
	VADDPS  64(R11)(R8*1), Y4, Y4
	VMOVUPS 64(R11)(R8*2), Y5
	VADDPS  64(R11)(R9*1), Y5, Y5
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y2, Y2
	VMOVUPS 96(R11), Y4
	VADDPS  96(R11)(R8*1), Y4, Y4
	VMOVUPS 96(R11)(R8*2), Y5
	VADDPS  96(R11)(R9*1), Y5, Y5
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y3, Y3
	ADDQ R10, R11
	SUBQ $4, R12
	JMP  quad32

one32:
	TESTQ  R12, R12
	JZ     store32
	VADDPS (R11), Y0, Y0
	VADDPS 32(R11), Y1, Y1
	VADDPS 64(R11), Y2, Y2
	VADDPS 96(R11), Y3, Y3
	ADDQ   R8, R11
	DECQ   R12
	JMP    one32

store32:
	VMOVUPS Y0, (DI)(BX*1)
	VMOVUPS Y1, 32(DI)(BX*1)
	VMOVUPS Y2, 64(DI)(BX*1)
	VMOVUPS Y3, 96(DI)(BX*1)
	ADDQ    $128, BX
	JMP     col32

col8:
	CMPQ    BX, CX
	JAE     sdone
	VMOVUPS (DI)(BX*1), Y0
	LEAQ    (SI)(BX*1), R11
	MOVQ    DX, R12

quad8:
	CMPQ R12, $4
	JL   one8
	VMOVUPS 0(R11), Y4
	VADDPS  0(R11)(R8*1), Y4, Y4
	VMOVUPS 0(R11)(R8*2), Y5
	VADDPS  0(R11)(R9*1), Y5, Y5
	VADDPS  Y5, Y4, Y4
	VADDPS  Y4, Y0, Y0
	ADDQ R10, R11
	SUBQ $4, R12
	JMP  quad8

one8:
	TESTQ  R12, R12
	JZ     store8
	VADDPS (R11), Y0, Y0
	ADDQ   R8, R11
	DECQ   R12
	JMP    one8

store8:
	VMOVUPS Y0, (DI)(BX*1)
	ADDQ    $32, BX
	JMP     col8

sdone:
	VZEROUPPER
	RET
