#!/usr/bin/env python
"""Fuzz the ``.onebit`` reader (``make fuzz``): mutate valid model files, and require that
``read_model`` returns a consistent model or raises ``ModelFileError``, never anything else.

    python scripts/fuzz_model_files.py --cases 100000 --seed 0            # the long run
    python scripts/fuzz_model_files.py --seed-file a.onebit b.onebit ...   # your own seed files
    python scripts/fuzz_model_files.py --seed 0 --start 4711 --cases 1     # replay one case

Seeds: the built-in set (``onebit.export.fuzz.builtin_seeds``), exports of small models when
``onebit.export.export`` exists (plain BNNs, zoo models, and tiny zoo models binarized with each
method, which hold the method ops: ``onebit.export.fuzz.METHOD_MODELS``), and ``--seed-file`` files. Prints the cases run, the errors by
kind and every contract failure ("crash"); failing inputs go to ``--crash-dir``. Exit status 1
when anything failed. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys

from onebit.export.fuzz import builtin_seeds, export_seeds, load_seed_files, run


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=int, default=100_000, help="number of cases (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="run seed: case i of seed s is always the same input")
    p.add_argument("--start", type=int, default=0, help="first case index (to replay a failure)")
    p.add_argument("--seed-file", nargs="*", default=[], help="extra valid .onebit files to mutate")
    p.add_argument("--no-export", action="store_true", help="do not use onebit.export.export seeds")
    p.add_argument("--time-limit", type=float, default=2.0, help="seconds per case before it counts as a hang")
    p.add_argument("--memory-every", type=int, default=10,
                   help="check the allocation bound (tracemalloc) on every N-th case; 0: never")
    p.add_argument("--engine", action="store_true",
                   help="also load every accepted file with onebit.Engine and run it (a native crash ends the run; "
                        "the last progress line and faulthandler's trace locate it)")
    p.add_argument("--crash-dir", default="build/fuzz-crashes", help="where failing inputs are written")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    faulthandler.enable()  # a native crash still prints where it happened
    skipped: list[str] = []
    exported = [] if args.no_export else export_seeds(zoo=True, methods=True, skipped=skipped)
    seeds = builtin_seeds() + exported + load_seed_files(args.seed_file)
    print(f"seeds: {len(seeds)} ({', '.join(f'{s.name} [{len(s.data)} B]' for s in seeds)})", flush=True)
    for reason in skipped:
        print(f"  not exported: {reason}", flush=True)

    def save(index: int, case: str, data: bytes, message: str) -> None:
        os.makedirs(args.crash_dir, exist_ok=True)
        path = os.path.join(args.crash_dir, f"seed{args.seed}-case{index}.onebit")
        with open(path, "wb") as f:
            f.write(data)
        print(f"FAILURE case {index} ({case}): {message} -> {path}", flush=True)

    def progress(report) -> None:
        print(f"... {report.cases} cases, {len(report.failures)} failures, {report.seconds:.0f} s", flush=True)

    report = run(seeds, cases=args.cases, seed=args.seed, start=args.start, time_limit=args.time_limit,
                 memory_every=args.memory_every, engine=args.engine, on_failure=save, progress=progress)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
