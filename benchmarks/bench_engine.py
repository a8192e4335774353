"""End-to-end batch-1 latency: the onebit C++ engine vs torch FP32 of the same architecture, on the same
number of threads, with a per-op profile of the engine (stem / binary body / head).

    .venv/bin/python benchmarks/bench_engine.py [--models toy_bireal toy_reactnet bireal18 ...]
                                                [--methods bnn xnor ...] [--threads 1 2] [--repeats 20]
                                                [--quantize none int8] [--json out.json]

Models: toy ResNet-likes built from onebit.nn blocks (float stem, binary blocks, float head; torch
runs the same binarized module in eval, i.e. FP32 convs on +-1 values) and zoo models
(``onebit.models.create(name, num_classes=1000, in_chans=3, method=...)`` at 224x224, vgg_small at 32x32;
torch runs the float model, method=None); ``--methods`` runs each zoo model once per method (one row
per method: issue 6's per-method table) instead of its default method. A zoo model the converter
cannot export yet is skipped with its error. ``--quantize int8`` adds rows whose file has int8 float layers
(``export(..., quantize="int8")``: stem, classifier and float shortcuts in integer arithmetic). Latency = median over --repeats calls after warm-up. Profile: the engine's per-op
wall times (one profiled call, median of 5) summed into stem (float ops before the first binary op),
body (first to last binary op), head (after the last binary op).
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
from torch import nn

import onebit
from onebit import _C
from onebit.export import export
from onebit.timing import median_seconds
from onebit.nn import BinaryBasicBlock, ReActNetBlock

BINARY_OPS = {"bitpack", "bconv2d", "blinear", "bmaxpool", "dybitpack", "sbconv2d", "sblinear"}
ZOO = {  # name -> (method, resolution, classes)
    "bireal18": ("bireal", 224, 1000),
    "reactnet_a": ("reactnet", 224, 1000),
    "binary_alexnet": ("bnn", 224, 1000),
    "vgg_small": ("bnn", 32, 10),
}


def _toy(block, widths, hw: int) -> tuple[nn.Module, nn.Module, tuple]:
    """Float stem (3x3, 64) -> binary blocks -> global pool + linear; (binary, torch twin, input shape)."""
    torch.manual_seed(0)
    layers, c = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0])], widths[0]
    for w in widths:
        layers.append(block(c, w, 1 if w == c else 2))
        c = w
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 1000)).eval()
    return model, model, (3, hw, hw)


def toy_bireal():
    spec = onebit.methods.get("bireal")
    return _toy(lambda i, o, s: BinaryBasicBlock(i, o, s, spec=spec), [64, 64, 128, 128, 256, 256], 56)


def toy_reactnet():
    spec = onebit.methods.get("reactnet")
    return _toy(lambda i, o, s: ReActNetBlock(i, o, s, spec=spec), [64, 128, 128, 256, 256], 56)


TOYS = {"toy_bireal": toy_bireal, "toy_reactnet": toy_reactnet}


def build(name: str, method: str | None = None):
    if name in TOYS:
        return TOYS[name]()
    default, res, classes = ZOO[name]
    method = method or default
    binary = onebit.models.create(name, num_classes=classes, in_chans=3, method=method).eval()
    fp32 = onebit.models.create(name, num_classes=classes, in_chans=3, method=None).eval()
    return binary, fp32, (3, res, res)


def split_profile(engine: onebit.Engine, x) -> dict[str, float]:
    """Median (over 5 profiled calls) of stem / body / head seconds."""
    kinds = [op["op"] for op in engine.ops]
    binary = [i for i, k in enumerate(kinds) if k in BINARY_OPS]
    first, last = (binary[0], binary[-1]) if binary else (len(kinds), len(kinds) - 1)
    runs = [engine.profile(x) for _ in range(5)]
    parts = {"stem": [], "body": [], "head": []}
    for prof in runs:
        secs = [s for _, _, s in prof]
        parts["stem"].append(sum(secs[:first]))
        parts["body"].append(sum(secs[first:last + 1]))
        parts["head"].append(sum(secs[last + 1:]))
    return {k: statistics.median(v) for k, v in parts.items()}


def bench(name: str, threads: list[int], repeats: int, method: str | None = None,
          quantize: str | None = None) -> list[dict]:
    binary, fp32, shape = build(name, method)
    label = (name if method is None else f"{name}/{method}") + (f" [{quantize}]" if quantize else "")
    x = torch.randn(1, *shape)
    try:
        with torch.no_grad():
            blob = export(binary, x, quantize=quantize)
    except Exception as exc:  # noqa: BLE001 - any converter refusal is reported, not fatal
        print(f"{label}: skipped, does not export yet: {type(exc).__name__}: {str(exc)[:160]}", flush=True)
        return []
    rows = []
    for t in threads:
        torch.set_num_threads(t)
        engine = onebit.Engine(blob, num_threads=t)
        xn = x.numpy()
        with torch.no_grad():
            torch_s = median_seconds(lambda: fp32(x), repeats)
        engine_s = median_seconds(lambda: engine(xn), repeats)
        prof = split_profile(engine, xn)
        rows.append({"model": name, "method": method, "quantize": quantize, "input": list(shape), "threads": t, "engine_ms": 1e3 * engine_s,
                     "torch_fp32_ms": 1e3 * torch_s, "speedup": torch_s / engine_s,
                     **{f"{k}_ms": 1e3 * v for k, v in prof.items()}, "file_bytes": len(blob)})
        r = rows[-1]
        print(f"{label:20s} {t}T  engine {r['engine_ms']:8.2f} ms  torch FP32 {r['torch_fp32_ms']:8.2f} ms  "
              f"x{r['speedup']:5.2f}  | stem {r['stem_ms']:7.2f}  body {r['body_ms']:7.2f}  head {r['head_ms']:6.2f} ms"
              f"  | file {len(blob) / 2**20:.2f} MiB", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=[*TOYS, *ZOO])
    p.add_argument("--methods", nargs="+", default=None, help="zoo models: one run per method")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--quantize", nargs="+", default=["none"], choices=["none", "int8"],
                   help="float layers of the engine's file: float32 (none) and/or int8; one row each")
    p.add_argument("--json", default=None, help="also write the rows here")
    args = p.parse_args()
    print(f"# ISA {onebit.kernels.available_isas()[-1]}, float GEMM: {_C.float_gemm_backend()}, torch {torch.__version__}")
    methods = args.methods or [None]
    quants = [None if q == "none" else q for q in args.quantize]
    rows = [r for m in args.models for meth in (methods if m in ZOO else [None]) for q in quants
            for r in bench(m, args.threads, args.repeats, meth, q)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
