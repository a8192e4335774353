"""Lowering: an fx graph of an eval-mode model -> the linear op list of a ``.onebit`` file.

Each fx node becomes ops of :mod:`onebit.export.graph`. Binary layers become ``bitpack`` (their input
quantizer) + ``bconv2d``/``blinear`` (packed weights). Folding (see :mod:`onebit.export.fold`):

* weight scales and conv bias -> the float output transform ``v = alpha d + beta``; a following
  BatchNorm -> ``fma(v, bn_scale, bn_shift)`` (PyTorch's own BN arithmetic);
* a chain of per-channel ops (BN, bias, PReLU/RPReLU, ReLU, Hardtanh, one MaxPool) ending in the input
  quantizers of binary layers -> integer thresholds: the layer emits bits, the next one reads them
  directly (a max-pool in the chain becomes ``bmaxpool`` on bits: OR where the bit rises with the
  pooled value, AND where it falls).
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .. import nn as onn
from ..quantizers import Quantizer
from . import fold
from .capture import ExportError
from .graph import GRAPH_VERSION
from .lower_methods import MethodLowering

__all__ = ["SUPPORTED", "lower"]

SUPPORTED = ("BinaryConv2d", "BinaryLinear", "Conv2d", "Linear", "BatchNorm1d/2d", "LearnableBias", "ReLU",
             "Hardtanh", "PReLU", "RPReLU", "DyPReLU", "ElasticLink", "MaxPool2d", "AvgPool2d",
             "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "BlurPool2d", "option-A shortcut", "Flatten",
             "Identity", "Dropout", "+ (add)", "torch.cat(dim=1)", "torch.flatten(x, 1)", "F.relu")
_CHAIN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, onn.LearnableBias, nn.PReLU, onn.RPReLU, nn.ReLU, nn.Hardtanh,
                nn.Identity, nn.Dropout)
_ALIAS_TYPES = (nn.Identity, nn.Dropout)


def _pair(v) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(x) for x in v]


def input_spec(q: Quantizer | None, name: str) -> tuple[str, str, torch.Tensor | None]:
    """(domain, bitpack mode, per-channel thresholds or None) of a binary layer's input quantizer."""
    qn = getattr(q, "name", None)
    if qn in ("ste_sign", "approx_sign", "swish_sign", "learnable_swish_sign", "ede_sign"):
        return "pm1", "sign", None
    if qn == "rsign":
        return "pm1", "sign", q.threshold.detach().to(torch.float32).clone()
    if qn == "ste_heaviside":
        return "01", "heaviside", None
    if qn == "si_heaviside":  # H(s (x - b)) = [x > b] for s > 0 (other signs: MethodLowering.pack_input)
        return "01", "heaviside", q.bias.detach().to(torch.float32).reshape(-1).clone()
    if qn == "dysign":
        raise ExportError(f"module {name!r}: dysign thresholds are per sample (packed by dybitpack, "
                          "not folded)")
    raise ExportError(f"module {name!r}: input quantizer {qn or type(q).__name__!r} cannot be packed "
                      "(supported: sign-type, rsign, dysign, ste_heaviside, si_heaviside); use one of those")


class Lowerer(MethodLowering):
    """Walks the fx graph once, in order, emitting ops; see the module docstring."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm, self.modules = gm, dict(gm.named_modules())
        self.ops: list[dict] = []
        self.values: dict[str, dict] = {}
        self.tensors: dict[str, np.ndarray] = {}
        self.env: dict[fx.Node, str] = {}       # node -> float value
        self.bits_env: dict[fx.Node, str] = {}  # node -> bits value (its binarizers were folded upstream)
        self.skip: set[fx.Node] = set()
        self.inputs: list[str] = []
        self.outputs: list[str] = []

    # ---- helpers ---------------------------------------------------------------------------------------
    def value(self, shape, kind: str = "float", domain: str | None = None, hint: str = "t") -> str:
        name = f"{hint}{len(self.values)}"
        self.values[name] = {"kind": kind, "shape": [int(s) for s in shape]}
        if domain:
            self.values[name]["domain"] = domain
        return name

    def tensor(self, op_name: str, role: str, arr) -> str:
        arr = arr.detach().cpu().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr)
        key = f"{op_name or 'op'}.{role}"
        while key in self.tensors:
            key += "_"
        self.tensors[key] = np.ascontiguousarray(arr)
        return key

    def emit(self, op: str, name: str, inputs: list[str], out: str, attrs: dict, tensors: dict | None = None) -> str:
        refs = {role: self.tensor(name, role, arr) for role, arr in (tensors or {}).items()}
        self.ops.append({"op": op, "name": name, "inputs": inputs, "outputs": [out], "attrs": attrs,
                         "tensors": refs})
        return out

    @staticmethod
    def shape(node: fx.Node) -> list[int]:
        return list(node.meta["tensor_meta"].shape[1:])

    def float_in(self, node: fx.Node, arg) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.env:
            raise ExportError(f"node {node.name!r}: input {arg!r} is not a tensor the converter produced "
                              "(constants and non-tensor inputs are not supported)")
        return self.env[arg]

    # ---- driver ----------------------------------------------------------------------------------------
    def run(self) -> dict:
        for node in self.gm.graph.nodes:
            if node in self.skip:
                continue
            if node.op == "placeholder":
                if self.inputs:
                    raise ExportError("the model must take exactly one tensor input")
                self.env[node] = self.value(self.shape(node), hint="input")
                self.inputs.append(self.env[node])
            elif node.op == "output":
                out = node.args[0]
                if not isinstance(out, fx.Node) or out not in self.env:
                    raise ExportError("the model must return exactly one tensor")
                self.outputs.append(self.env[out])
            elif node.op == "call_module":
                self.call_module(node, self.modules[node.target])
            elif node.op in ("call_function", "call_method"):
                self.call_function(node)
            else:
                raise ExportError(f"node {node.name!r} ({node.op} {node.target}) is not supported: the converter "
                                  "lowers module calls and a few functions; parameters must live in modules")
        return {"version": GRAPH_VERSION, "values": self.values, "inputs": self.inputs,
                "outputs": self.outputs, "ops": self.ops}

    # ---- modules ---------------------------------------------------------------------------------------
    def call_module(self, node: fx.Node, m: nn.Module) -> None:
        name = str(node.target)
        if isinstance(m, (onn.BinaryConv2d, onn.BinaryLinear)):
            return self.binary_layer(node, m, name)
        if isinstance(m, onn.ElasticLink):
            return self.elastic_link(node, m, name)
        handler = self._module_handlers().get(type(m))
        if handler is None:
            raise ExportError(f"module {name!r} ({type(m).__name__}) is not supported by the converter. "
                              f"Supported: {', '.join(SUPPORTED)}. Replace it with supported modules, or "
                              "add a lowering for it in onebit/export/lower.py")
        x = self.float_in(node, node.args[0])
        self.env[node] = handler(node, m, name, x)

    def _module_handlers(self) -> dict[type, Callable]:
        return {nn.Conv2d: self.conv2d, nn.Linear: self.linear, nn.BatchNorm2d: self.batchnorm,
                nn.BatchNorm1d: self.batchnorm, onn.LearnableBias: self.learnable_bias,
                nn.ReLU: lambda n, m, name, x: self.emit("relu", name, [x], self.value(self.shape(n)), {}),
                nn.Hardtanh: lambda n, m, name, x: self.emit(
                    "hardtanh", name, [x], self.value(self.shape(n)), {"min": float(m.min_val), "max": float(m.max_val)}),
                nn.PReLU: self.prelu, onn.RPReLU: self.rprelu, nn.MaxPool2d: self.maxpool,
                nn.AvgPool2d: self.avgpool, nn.AdaptiveAvgPool2d: self.adaptive_avgpool, nn.Flatten: self.flatten,
                nn.Identity: lambda n, m, name, x: x, nn.Dropout: lambda n, m, name, x: x} | self.method_handlers()

    def conv2d(self, node, m: nn.Conv2d, name, x):
        if m.padding_mode != "zeros":
            raise ExportError(f"module {name!r}: padding_mode={m.padding_mode!r} is not supported (use 'zeros')")
        left, right, top, bottom = m._reversed_padding_repeated_twice
        attrs = {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": [top, bottom, left, right],
                 "dilation": _pair(m.dilation), "groups": m.groups, "in_channels": m.in_channels,
                 "out_channels": m.out_channels}
        tensors = {"weight": m.weight.float()} | ({"bias": m.bias.float()} if m.bias is not None else {})
        return self.emit("conv2d", name, [x], self.value(self.shape(node)), attrs, tensors)

    def linear(self, node, m: nn.Linear, name, x):
        if len(self.values[x]["shape"]) != 1:
            raise ExportError(f"module {name!r}: Linear needs a flattened (N, F) input, got {self.values[x]['shape']}")
        tensors = {"weight": m.weight.float()} | ({"bias": m.bias.float()} if m.bias is not None else {})
        return self.emit("linear", name, [x], self.value(self.shape(node)),
                         {"in_features": m.in_features, "out_features": m.out_features}, tensors)

    def batchnorm(self, node, m, name, x):
        try:
            scale, shift = fold.batchnorm_affine(m, name)
        except fold.FoldError as exc:
            raise ExportError(str(exc)) from None
        return self.emit("affine", name, [x], self.value(self.shape(node)), {"fma": True},
                         {"scale": scale, "shift": shift})

    def learnable_bias(self, node, m, name, x):
        b = m.bias.detach().float()
        return self.emit("affine", name, [x], self.value(self.shape(node)), {"fma": False},
                         {"scale": torch.ones_like(b), "shift": b})

    def prelu(self, node, m: nn.PReLU, name, x):
        c = self.values[x]["shape"][0]
        slope = m.weight.detach().float().expand(c) if m.weight.numel() == 1 else m.weight.detach().float()
        return self.emit("prelu", name, [x], self.value(self.shape(node)), {}, {"slope": slope.contiguous()})

    def rprelu(self, node, m, name, x):
        return self.emit("rprelu", name, [x], self.value(self.shape(node)), {},
                         {"shift_in": m.shift_in.float(), "slope": m.slope.float(), "shift_out": m.shift_out.float()})

    def _pool_attrs(self, m, name) -> dict:
        if _pair(getattr(m, "dilation", 1)) != [1, 1] or getattr(m, "return_indices", False):
            raise ExportError(f"module {name!r}: pools with dilation or return_indices are not supported")
        stride = m.stride if m.stride is not None else m.kernel_size
        return {"kernel": _pair(m.kernel_size), "stride": _pair(stride), "padding": _pair(m.padding),
                "ceil_mode": bool(m.ceil_mode)}

    def maxpool(self, node, m, name, x):
        return self.emit("maxpool", name, [x], self.value(self.shape(node)), self._pool_attrs(m, name))

    def avgpool(self, node, m, name, x):
        if m.divisor_override is not None:
            raise ExportError(f"module {name!r}: AvgPool2d divisor_override is not supported")
        attrs = self._pool_attrs(m, name) | {"count_include_pad": bool(m.count_include_pad)}
        return self.emit("avgpool", name, [x], self.value(self.shape(node)), attrs)

    def adaptive_avgpool(self, node, m, name, x):
        if _pair(m.output_size) != [1, 1]:
            raise ExportError(f"module {name!r}: only AdaptiveAvgPool2d(1) (global pooling) is supported")
        return self.emit("global_avgpool", name, [x], self.value(self.shape(node)), {})

    def flatten(self, node, m, name, x):
        if getattr(m, "start_dim", 1) != 1 or getattr(m, "end_dim", -1) != -1:
            raise ExportError(f"module {name!r}: only flatten(start_dim=1, end_dim=-1) is supported")
        if len(self.values[x]["shape"]) == 1:
            return x
        return self.emit("flatten", name, [x], self.value(self.shape(node)), {})

    # ---- functions -------------------------------------------------------------------------------------
    def call_function(self, node: fx.Node) -> None:
        t, args = node.target, node.args
        if t in (operator.add, operator.iadd, torch.add, "add", "add_") and len(args) == 2 and not node.kwargs:
            a, b = self.float_in(node, args[0]), self.float_in(node, args[1])
            self.env[node] = self.emit("add", node.name, [a, b], self.value(self.shape(node)), {})
        elif t is torch.cat and (node.kwargs.get("dim", args[1] if len(args) > 1 else 0) in (1, -3)):
            ins = [self.float_in(node, a) for a in args[0]]
            self.env[node] = self.emit("concat", node.name, ins, self.value(self.shape(node)), {})
        elif t in (torch.flatten, "flatten") and list(args[1:]) + list(node.kwargs.values()) in ([1], [1, -1]):
            self.env[node] = self.flatten(node, nn.Flatten(), node.name, self.float_in(node, args[0]))
        elif t in (F.relu, torch.relu, "relu") and len(args) == 1:
            self.env[node] = self.emit("relu", node.name, [self.float_in(node, args[0])],
                                       self.value(self.shape(node)), {})
        else:
            raise ExportError(f"node {node.name!r}: {node.op} {getattr(t, '__name__', t)} is not supported by "
                              f"the converter. Supported: {', '.join(SUPPORTED)}")

    # ---- binary layers ---------------------------------------------------------------------------------
    def binary_layer(self, node: fx.Node, m, name: str) -> None:
        """Pack the input; emit bits when the following chain folds into thresholds, else a float output."""
        _, bits_in = self.pack_input(node, node.args[0], m.input_quantizer, name)
        try:
            wbits, alpha = fold.binary_weight(m, name)
        except fold.FoldError:  # two-level ({alpha, beta}) weights: float output (binary_float -> sbinary)
            wbits = None
        if wbits is not None and self.emit_bits(node, m, name, bits_in, wbits, alpha):
            return
        out_node = node
        bn = self.single_user_module(node, (nn.BatchNorm1d, nn.BatchNorm2d))
        if bn is not None and bn.meta["tensor_meta"].shape == node.meta["tensor_meta"].shape \
                and getattr(self.modules[bn.target], "running_mean", None) is not None:
            self.skip.add(bn)
            out_node = bn
        else:
            bn = None
        self.env[out_node] = self.binary_float(m, name, bits_in, self.shape(node),
                                               None if bn is None else self.modules[bn.target], str(getattr(bn, "target", "")))

    def emit_bits(self, node: fx.Node, m, name: str, bits_in: str, wbits, alpha) -> bool:
        """Emit the layer with a bits output if its chain folds into thresholds (see fold.py)."""
        is_conv = isinstance(m, onn.BinaryConv2d)
        bias = m.bias.detach().float() if m.bias is not None else torch.zeros_like(alpha)
        fused = self.try_fuse_bits(node, alpha, bias, wbits[0].numel(), is_conv)
        if fused is None:
            return False
        attrs = self.conv_attrs(m, name) if is_conv else {"in_features": m.in_features, "out_features": m.out_features}
        attrs["mode"] = "xor" if self.values[bits_in]["domain"] == "pm1" else "and"
        weight = fold.pack_conv_weight(wbits) if is_conv else fold.pack_linear_weight(wbits)
        end, chain, out_domain, t, flip, pool = fused
        self.skip.update(chain)
        attrs |= {"output": "bits", "out_domain": out_domain}
        out = self.emit("bconv2d" if is_conv else "blinear", name, [bits_in],
                        self.value(self.shape(node), "bits", out_domain),
                        attrs, {"weight": weight, "threshold": t, "flip": flip})
        if pool is not None:
            pnode, or_mask = pool
            out = self.emit("bmaxpool", str(pnode.target), [out], self.value(self.shape(pnode), "bits", out_domain),
                            self._pool_attrs(self.modules[pnode.target], str(pnode.target)), {"or_mask": or_mask})
        self.bits_env[end] = out
        return True

    def binary_float(self, m, name: str, bits_in: str, out_shape, bn: nn.Module | None, bn_name: str = "") -> str:
        """A binary layer with float output (BatchNorm ``bn`` folded when given); two-level weights too."""
        try:
            wbits, alpha = fold.binary_weight(m, name)
        except fold.FoldError:
            return self.sbinary(m, name, bits_in, out_shape, bn, bn_name)
        is_conv = isinstance(m, onn.BinaryConv2d)
        attrs = self.conv_attrs(m, name) if is_conv else {"in_features": m.in_features, "out_features": m.out_features}
        attrs |= {"mode": "xor" if self.values[bits_in]["domain"] == "pm1" else "and",
                  "output": "float", "out_domain": "pm1"}
        bias = m.bias.detach().float() if m.bias is not None else torch.zeros_like(alpha)
        tensors: dict[str, Any] = {"weight": fold.pack_conv_weight(wbits) if is_conv else fold.pack_linear_weight(wbits),
                                   "alpha": alpha, "beta": bias}
        if bn is not None:
            try:
                tensors["bn_scale"], tensors["bn_shift"] = fold.batchnorm_affine(bn, bn_name)
            except fold.FoldError as exc:
                raise ExportError(str(exc)) from None
        return self.emit("bconv2d" if is_conv else "blinear", name, [bits_in], self.value(out_shape), attrs, tensors)

    def conv_attrs(self, m, name) -> dict:
        if m.padding_mode != "zeros":
            raise ExportError(f"module {name!r}: padding_mode={m.padding_mode!r} is not supported (use 'zeros')")
        if m.pad_value not in (0.0, 1.0):
            raise ExportError(f"module {name!r}: pad_value={m.pad_value} is not supported (use 0.0 or 1.0)")
        left, right, top, bottom = m._reversed_padding_repeated_twice
        return {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride), "padding": [top, bottom, left, right],
                "dilation": _pair(m.dilation), "groups": m.groups, "in_channels": m.in_channels,
                "out_channels": m.out_channels, "pad": "one" if m.pad_value == 1.0 else "zero"}

    def single_user_module(self, node: fx.Node, types) -> fx.Node | None:
        users = list(node.users)
        if len(users) == 1 and users[0].op == "call_module" and isinstance(self.modules[users[0].target], types) \
                and users[0].args[0] is node:
            return users[0]
        return None

    def binary_consumers(self, node: fx.Node) -> list[nn.Module] | None:
        users = list(node.users)
        mods = []
        for u in users:
            m = self.modules.get(u.target) if u.op == "call_module" else None
            if not isinstance(m, (onn.BinaryConv2d, onn.BinaryLinear)) or u.args[0] is not node \
                    or node in list(u.args[1:]) + list(u.kwargs.values()):
                return None
            if isinstance(m, onn.BinaryLinear) != (len(self.shape(node)) == 1):
                return None
            mods.append(m)
        return mods or None

    def try_fuse_bits(self, node: fx.Node, alpha, bias, k: int, is_conv: bool):
        """(end node, chain, out domain, T, flip, (pool node, or_mask) | None) if the layer can emit bits, else None."""
        chain, pool, cur = [], None, node
        while (consumers := self.binary_consumers(cur)) is None:
            users = list(cur.users)
            if len(users) != 1 or users[0].op != "call_module" or users[0].args[0] is not cur:
                return None
            m = self.modules[users[0].target]
            if isinstance(m, nn.MaxPool2d) and is_conv and pool is None:
                pool = (users[0], len(chain))
            elif not isinstance(m, _CHAIN_TYPES):
                return None
            chain.append(users[0])
            cur = users[0]
        try:
            return self.fold_chain(node, cur, chain, pool, consumers, alpha, bias, k, is_conv)
        except (fold.FoldError, ExportError):
            return None

    def fold_chain(self, node, end, chain, pool, consumers, alpha, bias, k, is_conv):
        fns = [self.modules[n.target] for n in chain]
        d = torch.arange(-k, k + 1, dtype=torch.float32)
        v = d[None, :] * alpha[:, None] + bias[:, None]              # (C, L): the layer's float output
        to_layout = (lambda t: t[None, :, :, None]) if is_conv else (lambda t: t.t())
        from_layout = (lambda t: t[0, :, :, 0]) if is_conv else (lambda t: t.t())
        specs = [input_spec(c.input_quantizer, "") for c in consumers]
        if len({s[0] for s in specs}) != 1:
            return None
        domain = specs[0][0]
        plain = [f for f, n in zip(fns, chain) if not isinstance(f, nn.MaxPool2d)]
        bits = [from_layout(fold.chain_bits(to_layout(v), plain, c.input_quantizer, domain)) for c in consumers]
        if any(not torch.equal(b, bits[0]) for b in bits[1:]):
            return None
        t, flip = fold.step_threshold(bits[0], k)
        pool_out = None
        if pool is not None:
            pool_out = (pool[0], self.pool_directions(to_layout(v), fns, pool[1], consumers[0].input_quantizer,
                                                      domain, from_layout))
        return end, chain, domain, t, flip, pool_out

    @staticmethod
    def pool_directions(v, fns, at: int, quantizer, domain, from_layout) -> np.ndarray:
        """or_mask per channel: 1 if the bit after the pool rises with the pooled value (max -> OR)."""
        with torch.no_grad():
            for f in fns[:at]:
                v = f(v)
        after = from_layout(fold.chain_bits(v, fns[at + 1:], quantizer, domain)).to(torch.int64)
        order = torch.argsort(from_layout(v), dim=1)
        b = torch.gather(after, 1, order)
        rising = (b[:, 1:] >= b[:, :-1]).all(dim=1)
        falling = (b[:, 1:] <= b[:, :-1]).all(dim=1)
        if not bool((rising | falling).all()):
            raise fold.FoldError("the binarized value is not monotone across the max-pool")
        return rising.to(torch.uint8).numpy()


def lower(gm: fx.GraphModule) -> tuple[dict, dict[str, np.ndarray]]:
    """(graph JSON, tensors) of a captured model."""
    lw = Lowerer(gm)
    graph = lw.run()
    return graph, lw.tensors
