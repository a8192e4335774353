"""Comparing two executors of a full-size binary network up to ties at its binarizers.

Two executors round their float ops differently by a few ulps, so a binarizer input that close to its
threshold may legitimately binarize differently, and one flipped bit changes everything downstream of
it. A tiny test network can draw an input without such near-ties (``zoo_cases.near_tie``); a full-size
one (millions of binarizer inputs) always has some. So the full-size tests steer the reference executor
along the other executor's decisions: at every binarizer op (``bitpack``, ``dybitpack``) the reference
takes the other executor's bits, after checking that each bit where the two differ is a near-tie
(``|input - threshold| <= rel * max|input|``). Then the outputs must agree as closely as for a tie-free
input: a wrong op anywhere still shows, either as a decision that is no tie or in the output.

The other executor is PyTorch (its quantizer modules' outputs, by the module names the exporter gives
the binarizer ops) or the C++ engine (the inputs of each binarizer, read by running the engine on the
graph cut after their producers; its bits are then the binarizer applied to them, a comparison the
kernel tests prove bit-exact).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

import onebit
from onebit.export import ModelFile, reference
from onebit.export.reference import apply_op, run
from onebit.quantizers import Quantizer

BINARIZERS = ("bitpack", "dybitpack")

#: decisions(op, inputs) -> the other executor's bits for binarizer op ``op``
Decisions = Callable[[dict, list[torch.Tensor]], torch.Tensor]


def threshold_distance(model: ModelFile, op: dict, xs: list[torch.Tensor]) -> torch.Tensor:
    """|input - threshold| per element of a binarizer op."""
    x = xs[0]  # the thresholds broadcast as the reference's ops broadcast them
    if op["op"] == "dybitpack":  # per-sample, per-channel thresholds (N, C)
        thr = reference._ns(xs[1], x)
    elif "thresholds" in op["tensors"]:
        thr = reference._ch(torch.from_numpy(model.tensors[op["tensors"]["thresholds"]]), x)
    else:
        thr = torch.zeros(())
    return (x - thr).abs()


def steered_run(model: ModelFile, x: torch.Tensor, decisions: Decisions, rel: float = 2e-5) -> tuple[torch.Tensor, int]:
    """The reference executor's output when every binarizer takes ``decisions``' bits, and how many of
    its own bits that changed; fails if a changed bit was not a near-tie."""
    changed = 0

    def hook(op: dict, xs: list[torch.Tensor], out: torch.Tensor) -> torch.Tensor | None:
        nonlocal changed
        if op["op"] not in BINARIZERS:
            return None
        want = decisions(op, xs)
        assert want.shape == out.shape and want.dtype == torch.bool, op["name"]
        differ = want != out
        if bool(differ.any()):
            dist = threshold_distance(model, op, xs)[differ]
            limit = rel * float(xs[0].abs().max())
            far = int((dist > limit).sum())
            assert far == 0, (f"{op['op']} {op['name']!r}: {far} of {int(differ.sum())} differing bits are no "
                              f"near-tie (distance to the threshold up to {float(dist.max()):.3g}, ties <= {limit:.3g})")
            changed += int(differ.sum())
        return want

    return run(model, x, hook=hook), changed


@torch.no_grad()
def torch_decisions(model: nn.Module, x: torch.Tensor) -> Decisions:
    """PyTorch's bits at each binarizer op, from its quantizer module of the same name."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, o))
             for name, m in model.named_modules() if isinstance(m, Quantizer)]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()

    def decide(op: dict, xs: list[torch.Tensor]) -> torch.Tensor:
        if op["name"] not in seen:
            raise KeyError(f"no PyTorch quantizer ran under the name of {op['op']} {op['name']!r}")
        q = seen[op["name"]]
        # sign binarizers: bit 1 = -1 (any scale > 0 keeps the sign); {0,1} binarizers: bit 1 = 1
        return q > 0 if op["op"] == "bitpack" and op["attrs"]["mode"] != "sign" else q < 0

    return decide


def prefix(model: ModelFile, value: str) -> ModelFile:
    """``model`` cut after the op that defines ``value``, with ``value`` as its output."""
    g = model.graph
    last = next(i for i, op in enumerate(g["ops"]) if value in op["outputs"])
    graph = {**g, "ops": g["ops"][: last + 1], "outputs": [value]}
    return ModelFile(graph=graph, tensors=model.tensors, metadata=model.metadata)


def engine_decisions(model: ModelFile, x: torch.Tensor) -> Decisions:
    """The engine's bits at each binarizer op (in the ISA active now): the binarizer applied to the
    engine's values of its inputs."""
    g = model.graph
    values: dict[str, torch.Tensor] = {g["inputs"][0]: x}
    for op in g["ops"]:
        if op["op"] in BINARIZERS:
            for name in op["inputs"]:
                if name not in values:
                    values[name] = onebit.Engine(prefix(model, name))(x)

    def decide(op: dict, xs: list[torch.Tensor]) -> torch.Tensor:
        return apply_op(model, op, [values[name] for name in op["inputs"]])

    return decide

