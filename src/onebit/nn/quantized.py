"""The one mixin that turns a torch layer into a quantized (binary) layer."""

from __future__ import annotations

import torch

from .. import quantizers
from ..quantizers import Quantizer, QuantizerSpec

__all__ = ["QuantizedLayerMixin"]


class QuantizedLayerMixin:
    """Quantize the input and the weight, then run the unchanged torch op.

    Mixed into ``nn.Conv2d`` / ``nn.Linear``: the torch layer keeps every argument and its own
    forward arithmetic; the mixin only supplies ``quantized_input`` and ``quantized_weight``.
    With both quantizers ``None`` the layer computes exactly what the torch layer computes.

    Layers run in ``"fake"`` mode (float ops on binarized values, for training); the packed
    runtime mode (bitwise kernels) is reported by ``mode`` once a layer is packed.
    """

    input_quantizer: Quantizer | None
    weight_quantizer: Quantizer | None

    def _init_quantizers(self, input_quantizer: QuantizerSpec, weight_quantizer: QuantizerSpec) -> None:
        # Per-channel quantizers get the channel count of what they quantize: the input's channels
        # (in_channels / in_features) for the input quantizer, the output channels for the weight's.
        self.input_quantizer = quantizers.get(input_quantizer, channels=self._channels("in"))
        self.weight_quantizer = quantizers.get(weight_quantizer, channels=self._channels("out"))
        self.init_weight_quantizer()

    def _channels(self, side: str) -> int | None:
        for attr in (f"{side}_channels", f"{side}_features"):
            if getattr(self, attr, None) is not None:
                return int(getattr(self, attr))
        return None

    def init_weight_quantizer(self) -> None:
        """Let the weight quantizer initialise itself from the current weight (e.g. BNN+ scale, SBNN closed form)."""
        if self.weight_quantizer is not None:
            self.weight_quantizer.init_from_weight(self.weight.detach())  # type: ignore[attr-defined]

    def load_float_state_dict(self, state_dict) -> None:
        """Load a float layer's state dict: quantizer parameters keep their init, then the weight
        quantizer is re-initialised from the loaded weight. Any other missing or unexpected key is an error."""
        missing, unexpected = self.load_state_dict(state_dict, strict=False)  # type: ignore[attr-defined]
        missing = [k for k in missing if not k.startswith(("input_quantizer.", "weight_quantizer."))]
        if missing or unexpected:
            raise RuntimeError(f"cannot load a float state dict: missing keys {missing}, unexpected keys {unexpected}")
        self.init_weight_quantizer()

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_quantizer is None else self.input_quantizer(x)

    def quantized_weight(self) -> torch.Tensor:
        w = self.weight  # type: ignore[attr-defined]
        return w if self.weight_quantizer is None else self.weight_quantizer(w)

    @property
    def mode(self) -> str:
        """``"fake"``: float ops on binarized tensors (training); ``"packed"``: bitwise kernels."""
        return "fake"

    @property
    def input_precision(self) -> int:
        return 32 if self.input_quantizer is None else self.input_quantizer.precision

    @property
    def weight_precision(self) -> int:
        return 32 if self.weight_quantizer is None else self.weight_quantizer.precision
