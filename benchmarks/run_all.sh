#!/usr/bin/env bash
# Every engine figure of BENCHMARKS.md in one go, with the commands it quotes, on an idle machine:
#   bash benchmarks/run_all.sh            (log: runs/bench-<host>-<date>.log; runs/ is not committed)
# For a new machine (the AVX-512 one above all): the kernel tables (bgemm XOR and AND, bconv2d layers
# alone and inside the engine at 1 and 2 threads, igemm), then end to end (float32 and int8 files) and
# weights packed at load vs not, and each fusion step (bench_engine_ab). Sets up .venv first
# (scripts/bootstrap.sh). ~12 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PY=.venv/bin/python
mkdir -p runs
LOG="runs/bench-$(hostname)-$(date +%Y%m%d-%H%M).log"
run() { echo; echo "\$ $*"; "$@"; }
{
  echo "# $(date -Is) $(grep -m1 'model name' /proc/cpuinfo) nproc=$(nproc) load: $(cat /proc/loadavg)"
  run $PY -c "import onebit.kernels as k; print(k.dispatch_summary())"
  run $PY benchmarks/bench_bitpack.py
  run $PY benchmarks/bench_bgemm.py
  run $PY benchmarks/bench_bgemm.py --mode and
  run $PY benchmarks/bench_bconv2d.py --output int32,bits,float
  run $PY benchmarks/bench_bconv2d_threads.py
  run $PY benchmarks/bench_igemm.py
  run $PY benchmarks/bench_engine.py --models bireal18 reactnet_a binary_alexnet vgg_small --threads 1 2 \
    --repeats 10 --quantize none int8
  run $PY benchmarks/bench_prepack.py
  run $PY benchmarks/bench_engine_ab.py
} 2>&1 | tee "$LOG"
echo "log: $LOG"
