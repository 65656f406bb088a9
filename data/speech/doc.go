// Package speech provides keyword-spotting data for the same Transformer that learns from
// images: spoken words become log-mel spectrogram "images" of 1 x Mels x Frames.
//
// It has a hardened reader and writer for PCM WAV files, a band-limited resampler, a
// log-mel front end (HTK mel scale, Hann window, gonum's FFT), a loader for directories laid
// out like Google's Speech Commands (one folder per word, validation_list.txt and
// testing_list.txt selecting the held-out files), a small spoken-digit set compiled into
// the binary, and a Loader that implements data.Batcher with SpecAugment-style
// augmentation.
//
// Features are computed once, when a set is loaded, so augmentation works in the feature
// domain: time shifts, frequency and time masks and Gaussian noise on the normalised
// log-mel values. Waveform-level noise is mixed in when the data are made (see
// internal/mkdigits). As in package data, every batch is a pure function of (seed, epoch,
// batch index).
package speech

//go:generate go run ./internal/mkdigits -embedded -overwrite -out embedded
