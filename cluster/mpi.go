//go:build mpi

package cluster

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

static int ofa_init(int *rank, int *size, int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc != MPI_SUCCESS) return rc;
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	MPI_Comm_rank(MPI_COMM_WORLD, rank);
	return MPI_Comm_size(MPI_COMM_WORLD, size);
}
static int ofa_allgather(void *send, int n, void *recv) {
	return MPI_Allgather(send, n, MPI_BYTE, recv, n, MPI_BYTE, MPI_COMM_WORLD);
}
static int ofa_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int ofa_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static void ofa_finalize(void) { MPI_Finalize(); }
static void ofa_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static void ofa_version(char *buf, int *n) { MPI_Get_library_version(buf, n); }
static int ofa_version_len(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"unsafe"
)

// Detect returns the world this process belongs to: the MPI world when a launcher (mpirun,
// srun) started it, the one-rank world otherwise (no MPI library is initialised then).
func Detect() (World, error) {
	if !Launched() {
		return Single{}, nil
	}
	return initMPI()
}

// mpiWorld is MPI_COMM_WORLD. Calls are serialised (MPI_THREAD_SERIALIZED): Go may run them
// on any OS thread, never two at once.
type mpiWorld struct {
	mu         sync.Mutex
	rank, size int
	name       string
	done       bool
}

func initMPI() (World, error) {
	var rank, size, provided C.int
	if rc := C.ofa_init(&rank, &size, &provided); rc != C.MPI_SUCCESS {
		return nil, fmt.Errorf("cluster: MPI_Init_thread failed (code %d)", int(rc))
	}
	if provided < C.MPI_THREAD_SERIALIZED {
		C.ofa_finalize()
		return nil, fmt.Errorf("cluster: the MPI library gives thread level %d, need MPI_THREAD_SERIALIZED", int(provided))
	}
	buf := make([]byte, int(C.ofa_version_len())+1)
	var n C.int
	C.ofa_version((*C.char)(unsafe.Pointer(&buf[0])), &n)
	name := strings.TrimSpace(strings.SplitN(string(buf[:n]), ",", 2)[0])
	return &mpiWorld{rank: int(rank), size: int(size), name: name}, nil
}

func (m *mpiWorld) Rank() int    { return m.rank }
func (m *mpiWorld) Size() int    { return m.size }
func (m *mpiWorld) Name() string { return m.name }

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func (m *mpiWorld) check(op string, rc C.int) error {
	if rc != C.MPI_SUCCESS {
		return fmt.Errorf("%w: %s failed on rank %d (MPI code %d)", ErrPeerLost, op, m.rank, int(rc))
	}
	return nil
}

func (m *mpiWorld) Allgather(send, recv []byte) error {
	if len(recv) != m.size*len(send) {
		return fmt.Errorf("cluster: allgather into %d bytes, want %d", len(recv), m.size*len(send))
	}
	if len(send) > math.MaxInt32 {
		return fmt.Errorf("cluster: allgather of %d bytes exceeds MPI's int count", len(send))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check("MPI_Allgather", C.ofa_allgather(ptr(send), C.int(len(send)), ptr(recv)))
}

func (m *mpiWorld) Broadcast(buf []byte, root int) error {
	if len(buf) > math.MaxInt32 {
		return fmt.Errorf("cluster: broadcast of %d bytes exceeds MPI's int count", len(buf))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check("MPI_Bcast", C.ofa_bcast(ptr(buf), C.int(len(buf)), C.int(root)))
}

func (m *mpiWorld) Barrier() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check("MPI_Barrier", C.ofa_barrier())
}

// Finish implements Finisher.
func (m *mpiWorld) Finish(failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done {
		return
	}
	m.done = true
	if failed && m.size > 1 {
		C.ofa_abort(1)
	}
	C.ofa_finalize()
}
