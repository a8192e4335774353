"""Whole binary conv layers (packed NHWC input -> int32 or packed-bit output) vs the roofline and
vs torch FP32 F.conv2d on the same shape, 1 thread, in one run.

    .venv/bin/python benchmarks/bench_bconv2d.py [--repeats 20] [--mode xor|and] [--pad-value 1|0]
                                                 [--variants a,b] [--output int32,bits,float]

Shapes: ResNet-18's 3x3 convolutions at batch 1, stride 1, padding 1, C_out = C_in. Binary MAC/s =
OH*OW*C_out*9*C_in / time, against the measured roofline of xor + popcount + add on 512-bit
registers: 1.21e12 binary MAC/s per core (DESIGN.md section 6). Time includes everything the layer
does: im2col, bgemm (with its weight repacking), padding corrections and the output transform.
Operands are numpy views (the binding then costs ~2 us a call). The last column times the variant's
bgemm alone on an im2col-sized matrix: layer overhead = everything that is not the GEMM.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from onebit import _C, kernels
from onebit.timing import best_seconds

ROOFLINE = 1.21e12  # binary MAC/s per core
SHAPES = [(56, 64), (28, 128), (14, 256), (7, 512)]  # (H = W, C_in = C_out)
MODES = {"xor": 0, "and": 1}



def layer(hw: int, c: int, mode: str, gen: torch.Generator):
    x = torch.randn(1, hw, hw, c, generator=gen)
    w = torch.randn(c, c, 3, 3, generator=gen)
    xp = kernels.pack(x, mode="sign" if mode == "xor" else "heaviside").numpy()
    wp = kernels.pack_conv_weight(w).numpy()
    return x, w, xp, wp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--mode", choices=sorted(MODES), default="xor")
    parser.add_argument("--pad-value", type=int, default=1)
    parser.add_argument("--variants", default="", help="comma-separated; default: every runnable fast one")
    parser.add_argument("--output", default="int32,bits", help="comma-separated of int32, bits, float")
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = kernels.selected_variants("bconv2d", args.variants)
    outputs = args.output.split(",")
    print(f"ISAs {kernels.available_isas()}; 1 thread; mode {args.mode}; pad_value {args.pad_value}; "
          f"roofline {ROOFLINE / 1e9:.0f} G binary MAC/s/core")
    gen = torch.Generator().manual_seed(0)
    for hw, c in SHAPES:
        x, w, xp, wp = layer(hw, c, args.mode, gen)
        macs = hw * hw * c * 9 * c
        xt = x.permute(0, 3, 1, 2).contiguous()
        t_torch = best_seconds(lambda: F.conv2d(xt, w, padding=1), max(1, args.repeats // 4), rounds=5)
        print(f"{hw}x{hw}x{c}: torch fp32 {t_torch * 1e6:8.1f} us ({macs / t_torch / 1e9:5.1f} G MAC/s)")
        # The bgemm alone on an im2col-sized matrix (M x N x K = OH*OW x C_out x 9*C_in): what the
        # layer would cost if im2col, corrections and the output transform were free.
        a = torch.randint(-(2**62), 2**62, (hw * hw, 9 * c // 64), generator=gen, dtype=torch.int64)
        a = a.view(torch.uint64).numpy()
        gemm_out = torch.empty(hw * hw, c, dtype=torch.int32).numpy()
        thr = torch.zeros(c, dtype=torch.int32).numpy()
        mult = torch.ones(c).numpy()
        for variant in variants:
            for kind in outputs:
                extra = {"bits": dict(threshold=thr), "float": dict(multiplier=mult, bias=mult)}.get(kind, {})
                dtype = {"int32": torch.int32, "bits": torch.uint64, "float": torch.float32}[kind]
                cols = c // 64 if kind == "bits" else c
                out = torch.empty(1, hw, hw, cols, dtype=dtype).numpy()

                def run():
                    _C.bconv2d(xp, wp, out, c, (1, 1), (1, 1), (1, 1), 1, MODES[args.mode], args.pad_value,
                               variant=variant, **extra)

                t = best_seconds(run, args.repeats)
                gemm = variant.removeprefix("im2col_")
                t_gemm = best_seconds(lambda: _C.bgemm(a, wp.reshape(c, -1), gemm_out, 9 * c, MODES[args.mode], gemm),
                                   args.repeats)
                rate = macs / t
                print(f"  {variant:>26} -> {kind:<5} {t * 1e6:8.1f} us {rate / 1e9:6.0f} G {rate / ROOFLINE:5.1%} "
                      f"of roofline, {t_torch / t:5.1f}x torch fp32; bgemm alone {t_gemm * 1e6:7.1f} us "
                      f"(layer = {t_gemm / t:4.0%} of bgemm speed)")


if __name__ == "__main__":
    main()
