// Package data provides the datasets the training tool learns from, in plain Go with no
// gorgonia: a hardened reader for IDX files (the MNIST family's format, plain or gzipped),
// Fashion-MNIST loaded from a directory, the Debian package or a small embedded subset, and
// a Loader that turns a set of images into normalised, optionally augmented float32 batches.
//
// Every batch is a pure function of (seed, epoch, batch index), so a training run resumed
// from a checkpoint sees exactly the data it would have seen had it never stopped.
package data

//go:generate go run ./internal/mkembed -out embedded
