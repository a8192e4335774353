"""Binarization methods as configurations of shared quantizers, layers and blocks.

>>> import onebit
>>> onebit.methods.list()
['bireal', 'bnn', 'bnn+', 'dybnn', 'elastic-link', 'reactnet', 'sbnn', 'si-bnn', 'xnor']
>>> method = onebit.methods.get("si-bnn")                 # a Method (a BinarizeConfig)
>>> both = onebit.methods.combine("reactnet", "dybnn")    # modifiers apply onto a base

One file per method, each citing its paper; see docs/methods.md.
"""

from .base import ELASTIC_LINK_OPTIONS, Method
from .registry import METHODS, MethodSpec, combine, get, list_methods, modifiers
from . import bnn, xnor, bireal, reactnet, si_bnn, sbnn, dybnn, bnn_plus, elastic_link  # noqa: E402,F401  (register)
from .recipe import clip_latent_weights_, param_groups

list = list_methods  # noqa: A001  (public name from the API: onebit.methods.list())

__all__ = [
    "ELASTIC_LINK_OPTIONS",
    "METHODS",
    "Method",
    "MethodSpec",
    "clip_latent_weights_",
    "combine",
    "get",
    "list",
    "list_methods",
    "modifiers",
    "param_groups",
]
