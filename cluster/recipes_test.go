package cluster

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The launch recipes of docs/cluster are checked here as far as this machine allows: no
// cluster, Slurm, Kubernetes or Docker daemon is reachable, so the manifests are decoded
// strictly into the kinds they claim and checked against each other; nothing is submitted.

const recipes = "../docs/cluster"

// The parts of Kubeflow's MPIJob (kubeflow.org/v2beta1, mpi-operator's v2beta1 types) and of
// the core Pod template that the manifest uses; decoding refuses any other field, so a
// misspelt or misplaced key fails here as the API server would refuse it.
type mpiJob struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		SlotsPerWorker *int `yaml:"slotsPerWorker"`
		RunPolicy      struct {
			CleanPodPolicy string `yaml:"cleanPodPolicy"`
			BackoffLimit   *int   `yaml:"backoffLimit"`
		} `yaml:"runPolicy"`
		MPIImplementation string                    `yaml:"mpiImplementation"`
		MPIReplicaSpecs   map[string]mpiReplicaSpec `yaml:"mpiReplicaSpecs"`
	} `yaml:"spec"`
}

type mpiReplicaSpec struct {
	Replicas *int `yaml:"replicas"`
	Template struct {
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type podSpec struct {
	TerminationGracePeriodSeconds *int        `yaml:"terminationGracePeriodSeconds"`
	Containers                    []container `yaml:"containers"`
	Volumes                       []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Resources struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

func TestMPIJobManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(recipes, "mpijob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var job mpiJob
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&job); err != nil {
		t.Fatalf("mpijob.yaml does not decode as an MPIJob: %v", err)
	}
	if job.APIVersion != "kubeflow.org/v2beta1" || job.Kind != "MPIJob" || job.Metadata.Name == "" {
		t.Fatalf("mpijob.yaml is %s %s %q, want a named kubeflow.org/v2beta1 MPIJob", job.APIVersion, job.Kind, job.Metadata.Name)
	}
	if job.Spec.MPIImplementation != "OpenMPI" {
		t.Fatalf("mpiImplementation %q, want OpenMPI (the image's MPI)", job.Spec.MPIImplementation)
	}
	for name := range job.Spec.MPIReplicaSpecs {
		if name != "Launcher" && name != "Worker" {
			t.Fatalf("replica spec %q: v2beta1 knows Launcher and Worker", name)
		}
	}
	l, w := job.Spec.MPIReplicaSpecs["Launcher"], job.Spec.MPIReplicaSpecs["Worker"]
	if l.Replicas == nil || *l.Replicas != 1 || w.Replicas == nil || *w.Replicas < 1 || job.Spec.SlotsPerWorker == nil {
		t.Fatal("want one launcher, at least one worker and slotsPerWorker")
	}
	if len(l.Template.Spec.Containers) != 1 || len(w.Template.Spec.Containers) != 1 {
		t.Fatal("want one container in the launcher and in each worker")
	}
	lc, wc := l.Template.Spec.Containers[0], w.Template.Spec.Containers[0]
	if lc.Image != wc.Image || lc.Image == "" {
		t.Fatalf("launcher image %q and worker image %q must be the same image", lc.Image, wc.Image)
	}
	cmd := append(append([]string(nil), lc.Command...), lc.Args...)
	if len(cmd) < 3 || cmd[0] != "mpirun" {
		t.Fatalf("the launcher runs %v, want mpirun", cmd)
	}
	np := -1
	for i, a := range cmd {
		if a == "-np" && i+1 < len(cmd) {
			np, _ = strconv.Atoi(cmd[i+1])
		}
	}
	if want := *w.Replicas * *job.Spec.SlotsPerWorker; np != want {
		t.Fatalf("mpirun -np %d, but %d workers x %d slots = %d ranks", np, *w.Replicas, *job.Spec.SlotsPerWorker, want)
	}
	if !strings.Contains(strings.Join(cmd, " "), "/usr/local/bin/ofa train") {
		t.Fatalf("the launcher does not start `ofa train` at the image's path: %v", cmd)
	}
	mounts := map[string]bool{}
	for _, m := range wc.VolumeMounts {
		mounts[m.Name] = true
	}
	for _, v := range w.Template.Spec.Volumes {
		if !mounts[v.Name] || v.PersistentVolumeClaim.ClaimName == "" {
			t.Fatalf("worker volume %q is not mounted or names no claim", v.Name)
		}
	}
	// the image of the manifest is the Dockerfile's: it puts ofa where the launcher runs it
	df, err := os.ReadFile(filepath.Join(recipes, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go build -tags mpi", "/usr/local/bin/ofa", "openmpi-bin", "libopenmpi-dev", "FROM debian:"} {
		if !bytes.Contains(df, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}

func TestSlurmScript(t *testing.T) {
	path := filepath.Join(recipes, "slurm.sh")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sh, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(sh, "-n", path).CombinedOutput(); err != nil {
			t.Fatalf("bash -n %s: %v\n%s", path, err, out)
		}
	}
	// #SBATCH lines: before the first command, each a known option with a value
	known := map[string]bool{"job-name": true, "nodes": true, "ntasks-per-node": true, "cpus-per-task": true, "time": true,
		"signal": true, "output": true}
	opts := map[string]string{}
	re := regexp.MustCompile(`^#SBATCH --([a-z-]+)=(\S+)$`)
	sc := bufio.NewScanner(bytes.NewReader(b))
	commands := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#SBATCH"):
			m := re.FindStringSubmatch(line)
			if m == nil || !known[m[1]] {
				t.Fatalf("%q: want #SBATCH --option=value with a known option", line)
			}
			if commands {
				t.Fatalf("%q after the first command: sbatch ignores it", line)
			}
			opts[m[1]] = m[2]
		case line != "" && !strings.HasPrefix(line, "#"):
			commands = true
		}
	}
	nodes, _ := strconv.Atoi(opts["nodes"])
	cpus, _ := strconv.Atoi(opts["cpus-per-task"])
	per, _ := strconv.Atoi(opts["ntasks-per-node"])
	m := regexp.MustCompile(`OFA_TRAIN_SHARDS=(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("slurm.sh sets no OFA_TRAIN_SHARDS")
	}
	if shards, _ := strconv.Atoi(string(m[1])); shards%(nodes*per) != 0 || shards != nodes*per*cpus {
		t.Fatalf("shards %d, want ranks (%d) x cores (%d)", shards, nodes*per, cpus)
	}
	if !bytes.Contains(b, []byte("srun --mpi=pmix ./ofa train")) || !bytes.Contains(b, []byte("--resume")) {
		t.Fatal("slurm.sh does not start ofa train with srun, or cannot resume")
	}
}

func TestHostfile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(recipes, "hostfile"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\S+ slots=[1-9][0-9]*$`)
	hosts := 0
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !re.MatchString(line) {
			t.Fatalf("hostfile line %q: want `host slots=N`", line)
		}
		hosts++
	}
	if hosts == 0 {
		t.Fatal("hostfile names no host")
	}
}
