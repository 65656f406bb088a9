package arch

import (
	"errors"
	"fmt"
	"strings"
)

// SubnetNames are the named subnets, in the order evaluations list them.
var SubnetNames = []string{"largest", "middle", "smallest"}

// ErrNoSpace is wrapped when a named subnet other than "largest" is asked of a model
// without a search space (anything but a supernet).
var ErrNoSpace = errors.New("needs a supernet's search space")

// NamedSubnet returns the subnet a name stands for: "largest" (every unit of a), "middle"
// or "smallest" (of space sp, which those need), or a subnet written as JSON.
func NamedSubnet(name string, a Arch, sp *Space) (Subnet, error) {
	switch name {
	case "largest":
		return Largest(a), nil
	case "middle", "smallest":
		if sp == nil {
			return Subnet{}, fmt.Errorf("subnet %q %w; this model runs only as a whole: use largest", name, ErrNoSpace)
		}
		if name == "middle" {
			return sp.Middle(), nil
		}
		return sp.Smallest(), nil
	}
	if strings.HasPrefix(strings.TrimSpace(name), "{") {
		return ParseSubnet([]byte(name), a)
	}
	return Subnet{}, fmt.Errorf("%w: subnet %q: want largest, middle, smallest or a JSON subnet", ErrArch, name)
}
