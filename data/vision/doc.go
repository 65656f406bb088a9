// Package vision reads image datasets a user brings: folders of image files in the layout
// of torchvision's ImageFolder (ROOT/<split>/<class>/<file>) and Hugging Face Parquet
// files, decoded once into input-sized bytes (data.Images), in parallel, through an
// optional memory-mapped cache. It sits beside data/speech and, like it, has no gorgonia.
//
// An image becomes a model input in a fixed, documented way (see ToPixels): decoded by the
// standard library or golang.org/x/image (PNG, JPEG, GIF, BMP, TIFF, WebP), composited over
// black where transparent, reduced to grey with ITU-R BT.601 weights for 1-channel inputs,
// then scaled so that its shorter side equals the input size (bilinear, antialiased, through
// golang.org/x/image/draw) and cropped to the centre square. An image already of the input
// size is copied without resampling, so a PNG folder written from IDX data gives exactly
// the IDX bytes.
package vision
