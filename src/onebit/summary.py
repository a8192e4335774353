"""``onebit.summary(model, input_size)``: a per-layer table of 1-bit vs 32-bit parameters, memory and MACs.

In the spirit of larq's ``summary``. A layer's weights count as 1-bit when its weight quantizer
has precision 1; its MACs count as binary when both its input and weight quantizers have
precision 1 (they then become XOR/AND + popcount in the engine). Every other parameter is
32-bit and every other MAC is a float MAC. MACs are per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .nn import QuantizedLayerMixin

__all__ = ["LayerSummary", "ModelSummary", "summary"]

_COLUMNS = ("Layer", "Type", "Output shape", "1-bit params", "32-bit params", "Memory (KiB)", "Binary MACs", "Float MACs")
_WIDTHS = (24, 22, 16, 13, 14, 13, 14, 14)


@dataclass
class LayerSummary:
    name: str
    type: str
    output_shape: tuple[int, ...] | None
    binary_params: int
    float_params: int
    binary_macs: int
    float_macs: int

    @property
    def memory_bytes(self) -> float:
        return self.binary_params / 8 + self.float_params * 4


@dataclass
class ModelSummary:
    layers: list[LayerSummary] = field(default_factory=list)

    @property
    def binary_params(self) -> int:
        return sum(layer.binary_params for layer in self.layers)

    @property
    def float_params(self) -> int:
        return sum(layer.float_params for layer in self.layers)

    @property
    def total_params(self) -> int:
        return self.binary_params + self.float_params

    @property
    def memory_bytes(self) -> float:
        """Size with 1 bit per binary weight and 32 bits per other parameter."""
        return sum(layer.memory_bytes for layer in self.layers)

    @property
    def float_equivalent_bytes(self) -> float:
        """Size of the same parameters all in 32-bit float."""
        return 4.0 * self.total_params

    @property
    def compression_ratio(self) -> float:
        return self.float_equivalent_bytes / self.memory_bytes if self.memory_bytes else 1.0

    @property
    def binary_macs(self) -> int:
        return sum(layer.binary_macs for layer in self.layers)

    @property
    def float_macs(self) -> int:
        return sum(layer.float_macs for layer in self.layers)

    @property
    def binary_mac_share(self) -> float:
        total = self.binary_macs + self.float_macs
        return self.binary_macs / total if total else 0.0

    def table(self) -> str:
        lines = [_row(_COLUMNS), "-" * (sum(_WIDTHS) + len(_WIDTHS) - 1)]
        for layer in self.layers:
            shape = "-" if layer.output_shape is None else str(tuple(layer.output_shape))
            lines.append(_row((layer.name, layer.type, shape, f"{layer.binary_params:,}", f"{layer.float_params:,}",
                               f"{layer.memory_bytes / 1024:.2f}", f"{layer.binary_macs:,}", f"{layer.float_macs:,}")))
        lines.append("-" * (sum(_WIDTHS) + len(_WIDTHS) - 1))
        lines.append(f"Total params: {self.total_params:,} (1-bit: {self.binary_params:,}, 32-bit: {self.float_params:,})")
        lines.append(f"Model size: {self.memory_bytes / 1024:.2f} KiB (float equivalent {self.float_equivalent_bytes / 1024:.2f}"
                     f" KiB, compression {self.compression_ratio:.2f}x)")
        lines.append(f"MACs per sample: {self.binary_macs + self.float_macs:,} (binary {100 * self.binary_mac_share:.2f}%,"
                     f" float {100 * (1 - self.binary_mac_share):.2f}%)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _row(cells) -> str:
    first = f"{cells[0]:<{_WIDTHS[0]}} {cells[1]:<{_WIDTHS[1]}} {cells[2]:<{_WIDTHS[2]}}"
    return first + "".join(f" {c:>{w}}" for c, w in zip(cells[3:], _WIDTHS[3:]))


def _reported_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Leaves and quantized layers (modules inside a quantized layer are folded into it), plus any
    container with parameters of its own (e.g. an Elastic-Link gate), reported with those only."""
    out, inside = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if isinstance(module, QuantizedLayerMixin):
            inside.append(name)
            out.append((name, module))
        elif not any(True for _ in module.children()) or any(True for _ in module.parameters(recurse=False)):
            out.append((name or type(module).__name__, module))
    return out


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    per_sample = output[0].numel() if output.dim() > 1 else output.numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_sample * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def _layer_summary(name: str, module: nn.Module, output: torch.Tensor | None) -> LayerSummary:
    leaf = isinstance(module, QuantizedLayerMixin) or not any(True for _ in module.children())
    # a container: its own parameters only (its children have rows of their own)
    params = sum(p.numel() for p in module.parameters(recurse=leaf))
    binary_params, binary = 0, False
    kind = type(module).__name__
    if isinstance(module, QuantizedLayerMixin):
        if module.weight_precision == 1:
            binary_params = module.weight.numel()
        binary = module.input_precision == 1 and module.weight_precision == 1
        kind = f"{kind}[{module.mode}]"
    macs = 0 if output is None else _macs(module, output)
    shape = None if output is None else tuple(output.shape[1:])
    return LayerSummary(name, kind, shape, binary_params, params - binary_params,
                        macs if binary else 0, 0 if binary else macs)


def summary(model: nn.Module, input_size, *, print_table: bool = True, dtype=torch.float32) -> ModelSummary:
    """Run ``model`` once on zeros of ``input_size`` (batch included) and tabulate every layer.

    Prints the table unless ``print_table=False``; returns a :class:`ModelSummary` with the totals
    (``memory_bytes``, ``float_equivalent_bytes``, ``compression_ratio``, ``binary_mac_share`` ...).
    """
    if not all(isinstance(d, int) and d > 0 for d in input_size):
        raise ValueError(f"input_size must be positive ints with the batch first, got {input_size}")
    modules = _reported_modules(model)
    outputs: dict[int, torch.Tensor] = {}

    def hook(module, _inputs, output):
        if isinstance(output, torch.Tensor):
            outputs.setdefault(id(module), output.detach())

    handles = [m.register_forward_hook(hook) for _, m in modules]
    was_training = model.training
    try:
        model.eval()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad():
            model(torch.zeros(*input_size, dtype=dtype, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    result = ModelSummary([_layer_summary(n, m, outputs.get(id(m))) for n, m in modules])
    if print_table:
        print(result.table())
    return result
