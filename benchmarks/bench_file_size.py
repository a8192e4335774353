"""Model file size against the ideal: 1 bit per binary weight plus 4 bytes per float parameter (engine
issue 5: goal within 5 %).

    .venv/bin/python benchmarks/bench_file_size.py

Ideal = ``onebit.summary(model).memory_bytes`` (binary params / 8 + float params x 4). The file adds:
the JSON graph header, per-tap word padding of packed weights (each tap's C_in / groups bits start a
64-bit word: a 16-channel layer stores 64 bits per 16 weights), folded per-channel output transforms
(BatchNorm + scales as float multiplier / bias or int32 thresholds + a flip byte), and 64-byte alignment
of every tensor. Random-init weights (sizes do not depend on training, except SBNN's sparse masks:
benchmarks/bench_sbnn.py).
"""

from __future__ import annotations

import torch

import onebit
from onebit.export import export
from onebit.summary import summary

MODELS = [  # name, method, in_chans, resolution, classes
    ("bireal18", "bireal", 3, 224, 1000), ("reactnet_a", "reactnet", 3, 224, 1000),
    ("binary_alexnet", "bnn", 3, 224, 1000), ("quicknet", "bnn", 3, 224, 1000),
    ("vgg_small", "bnn", 3, 32, 10), ("resnet20", "bnn", 3, 32, 10), ("cnn28", "bnn", 1, 28, 10),
]


def main() -> None:
    torch.manual_seed(0)
    print("| model (method) | 1-bit params | 32-bit params | ideal MiB | float32 model MiB | .onebit MiB "
          "| file / ideal | header KiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, method, ch, res, classes in MODELS:
        model = onebit.models.create(name, num_classes=classes, in_chans=ch, method=method).eval()
        s = summary(model, (1, ch, res, res), print_table=False)
        blob = export(model, torch.randn(1, ch, res, res))
        header = int.from_bytes(blob[16:24], "little")
        print(f"| {name} ({method}) | {s.binary_params:,} | {s.float_params:,} | {s.memory_bytes / 2**20:.3f} "
              f"| {s.float_equivalent_bytes / 2**20:.2f} | {len(blob) / 2**20:.3f} | {len(blob) / s.memory_bytes:.3f} "
              f"| {header / 1024:.1f} |", flush=True)


if __name__ == "__main__":
    main()
