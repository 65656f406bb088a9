// Package mpirun starts a test binary's test again under mpirun, so that distributed tests
// run with a plain `go test -tags mpi`: the outer test launches N ranks of itself and
// passes when every rank passed.
package mpirun

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Test runs the calling test (t.Name()) as np ranks under `mpirun --oversubscribe` and
// fails t with their output when any rank fails. It skips when mpirun is not installed.
// Open MPI refuses to run as root unless told; that permission is given here, to the
// launched job only, never to the caller's environment.
func Test(t *testing.T, np int, extraEnv ...string) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Skip("mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)")
	}
	args := []string{"--oversubscribe", "-np", fmt.Sprint(np)}
	for _, e := range extraEnv {
		args = append(args, "-x", e)
	}
	args = append(args, os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(mpirun, args...)
	cmd.Env = append(os.Environ(), Env()...)
	for _, e := range extraEnv {
		cmd.Env = append(cmd.Env, e)
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np %d %s: %v after %v\n%s", np, t.Name(), err, time.Since(start).Round(time.Millisecond), out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("mpirun -np %d %s: no rank reported PASS\n%s", np, t.Name(), out)
	}
	t.Logf("mpirun -np %d %s: %v", np, t.Name(), time.Since(start).Round(time.Millisecond))
}

// Env is what Open MPI needs to start as root (containers, CI) and on a machine with fewer
// cores than ranks; it is added to the launched command's environment only.
func Env() []string {
	return []string{"OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1", "OMPI_MCA_rmaps_base_oversubscribe=1"}
}
