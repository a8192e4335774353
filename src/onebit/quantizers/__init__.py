"""Quantizers: autograd Functions (forward + pseudo-gradient) wrapped in small modules, and a registry.

>>> from onebit import quantizers
>>> quantizers.list()  # doctest: +NORMALIZE_WHITESPACE
['approx_sign', 'domain_weight', 'dysign', 'ede_sign', 'learnable_swish_sign', 'rsign', 'scaled_sign',
 'si_heaviside', 'sibnn_weight', 'ste_heaviside', 'ste_sign', 'swish_sign', 'xnor_weight']
>>> q = quantizers.get({"name": "ste_sign", "clip_value": 1.5})
>>> r = quantizers.get("rsign", channels=64)  # per-channel quantizers need the channel count
"""

from .base import Quantizer, channel_view, sign
from .heaviside import SteHeaviside, ste_heaviside
from .registry import QUANTIZERS, QuantizerSpec, get, list_quantizers
from .sign import ApproxSign, SteSign, SwishSign, approx_sign, ste_sign, swish_sign, swish_sign_grad
from .xnor import XnorWeight, xnor_weight
from .ede import EdeSign, ede_grad, ede_sign, ede_t, set_ede_t_
from .rsign import RSign
from .si_heaviside import SiHeaviside, si_heaviside
from .sibnn_weight import SiBnnWeight, sibnn_weight
from .dysign import ChannelHyperFunction, DySign, global_pool
from .domain import DomainFit, DomainWeight, domain_fit, domain_quantize
from .scaled_sign import ScaledSign
from .swish import LearnableSwishSign, beta_schedule, set_swish_beta_

list = list_quantizers  # noqa: A001  (public name from the API: onebit.quantizers.list())

__all__ = [
    "QUANTIZERS",
    "ApproxSign",
    "ChannelHyperFunction",
    "DomainFit",
    "DomainWeight",
    "DySign",
    "EdeSign",
    "LearnableSwishSign",
    "Quantizer",
    "QuantizerSpec",
    "RSign",
    "ScaledSign",
    "SiBnnWeight",
    "SiHeaviside",
    "SteHeaviside",
    "SteSign",
    "SwishSign",
    "XnorWeight",
    "approx_sign",
    "beta_schedule",
    "channel_view",
    "domain_fit",
    "domain_quantize",
    "ede_grad",
    "ede_sign",
    "ede_t",
    "get",
    "global_pool",
    "list",
    "list_quantizers",
    "set_ede_t_",
    "set_swish_beta_",
    "si_heaviside",
    "sibnn_weight",
    "sign",
    "ste_heaviside",
    "ste_sign",
    "swish_sign",
    "swish_sign_grad",
    "xnor_weight",
]
