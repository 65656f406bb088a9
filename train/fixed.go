package train

import "github.com/ofa-go/ofa/arch"

// Fixed is a sampler that trains the same subnets at every step (fine-tuning a fixed
// architecture: the model itself).
type Fixed []arch.Subnet

// Sample implements sampler.Sampler.
func (f Fixed) Sample(int) []arch.Subnet { return f }

// Name implements sampler.Sampler.
func (f Fixed) Name() string { return "fixed" }
