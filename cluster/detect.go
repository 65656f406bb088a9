package cluster

import "os"

// Launched reports whether this process was started as one rank of an MPI job (mpirun, or
// srun with PMI/PMIx), from the variables the launchers set.
func Launched() bool {
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"} {
		if os.Getenv(v) != "" {
			return true
		}
	}
	return false
}

// Finisher is a world that holds resources (an MPI library) until the process ends.
type Finisher interface {
	// Finish releases the world; failed aborts every rank instead (MPI_Abort) so that no
	// rank waits for ever on one that returned an error.
	Finish(failed bool)
}

// Finish ends w when it holds resources; nil and the one-rank world need nothing.
func Finish(w World, failed bool) {
	if f, ok := w.(Finisher); ok {
		f.Finish(failed)
	}
}
