// Package kernel holds the matrix-multiplication micro-kernel in Go assembly (AVX2/FMA),
// kept apart from package nn because Go does not allow assembly in a package that uses cgo
// (the OpenBLAS build of nn does).
package kernel
