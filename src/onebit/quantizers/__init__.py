"""Quantizers: autograd Functions (forward + pseudo-gradient) wrapped in small modules, and a registry.

>>> from onebit import quantizers
>>> quantizers.list()
['approx_sign', 'ste_heaviside', 'ste_sign', 'swish_sign', 'xnor_weight']
>>> q = quantizers.get({"name": "ste_sign", "clip_value": 1.5})
"""

from .base import Quantizer, sign
from .heaviside import SteHeaviside, ste_heaviside
from .registry import QUANTIZERS, QuantizerSpec, get, list_quantizers
from .sign import ApproxSign, SteSign, SwishSign, approx_sign, ste_sign, swish_sign, swish_sign_grad
from .xnor import XnorWeight, xnor_weight

list = list_quantizers  # noqa: A001  (public name from the API: onebit.quantizers.list())

__all__ = [
    "QUANTIZERS",
    "ApproxSign",
    "Quantizer",
    "QuantizerSpec",
    "SteHeaviside",
    "SteSign",
    "SwishSign",
    "XnorWeight",
    "approx_sign",
    "get",
    "list",
    "list_quantizers",
    "sign",
    "ste_heaviside",
    "ste_sign",
    "swish_sign",
    "swish_sign_grad",
    "xnor_weight",
]
