#!/usr/bin/env bash
# Slurm batch script: 4 nodes, one ofa rank per node using all 16 of its cores. The batch
# is split into train.shards slices spread over the ranks (64 = 4 ranks x 16 cores), and
# the global batch grows with the machine under the linear scaling rule of CLUSTER.md
# (64 examples at lr 0.002 -> 512 at 0.016, with warm-up; not tuned on this data).
# Submit with `sbatch docs/cluster/slurm.sh`; resubmit the same to continue after a stop.
#SBATCH --job-name=ofa-supernet
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=04:00:00
#SBATCH --signal=TERM@120
#SBATCH --output=ofa-%j.log
set -euo pipefail
# scancel and the time limit (--signal: 120 s before it) send SIGTERM to every rank: they
# stop after the same step and rank 0 saves the state. srun starts the ranks through PMIx
# (Open MPI built with Slurm support); `mpirun ./ofa ...` inside the allocation works too.
OUT=${OUT:-runs/fmnist-4node}
if [ -f "$OUT/resume.safetensors" ]; then
  exec srun --mpi=pmix ./ofa train --out "$OUT" --resume
fi
export OFA_TRAIN_SHARDS=64 OFA_TRAIN_BATCH_SIZE=512 OFA_TRAIN_LR=0.016 OFA_TRAIN_WARMUP_STEPS=2000
exec srun --mpi=pmix ./ofa train --config configs/fashion-mnist.yaml --out "$OUT"
