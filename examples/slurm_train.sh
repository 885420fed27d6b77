#!/bin/bash
# Data-parallel training on SLURM: one torchrun per node, one rank per GPU, rendezvous on the
# first node of the allocation (README, "Several processes, GPUs or nodes").
#
#   sbatch examples/slurm_train.sh                      # a new run, or the next hour of it:
#   sbatch --dependency=afterany:JOBID examples/slurm_train.sh
#
# Every job resumes from runs/remimo.pt (any number of nodes or GPUs); --time-limit stops the run
# cleanly a few minutes before the allocation ends, so the scheduler's signal never has to.
#SBATCH --job-name=gnnmimo-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=4
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
#SBATCH --output=runs/%x-%j.log
set -euo pipefail

GPUS_PER_NODE=${SLURM_GPUS_ON_NODE:-4}
HEAD=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
mkdir -p runs

srun torchrun \
    --nnodes "$SLURM_JOB_NUM_NODES" --nproc-per-node "$GPUS_PER_NODE" \
    --rdzv-backend c10d --rdzv-endpoint "$HEAD:29500" --rdzv-id "$SLURM_JOB_ID" \
    -m gnnmimo train --detector remimo --nr 16 --nt 4:8 --qam 16 --snr auto --device cuda \
    --d-model 128 --heads 4 --blocks 6 --batch-size 1024 --lr 1e-4 --steps 200000 \
    --out runs/remimo.pt --resume --time-limit 52 --no-progress
