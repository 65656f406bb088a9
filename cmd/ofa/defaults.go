package main

import "github.com/ofa-go/ofa/data"

// dataMean and dataStd normalise Fashion-MNIST pixels (measured on its training split).
const (
	dataMean = data.FashionMNISTMean
	dataStd  = data.FashionMNISTStd
)
