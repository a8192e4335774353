"""The model zoo: registered architectures, float or binarized with any method.

>>> import onebit
>>> onebit.models.list("*resnet*")
['reactnet_resnet18', 'resnet18', 'resnet20']
>>> model = onebit.models.create("resnet18", num_classes=10, method="bireal")   # Bi-Real blocks
>>> model = onebit.models.create("cnn28", in_chans=1, method=["reactnet", "dybnn"])

One file per family; see docs/models.md for the table of models, counts and papers.
"""

from .registry import ALL_METHODS, MODELS, ModelInfo, create, list_models, model_info, register_model, resolve_method
from . import alexnet, cnn, quicknet, reactnet_a, resnet, vgg  # noqa: E402,F401  (register)

list = list_models  # noqa: A001  (public name from the API: onebit.models.list())

__all__ = [
    "ALL_METHODS",
    "MODELS",
    "ModelInfo",
    "create",
    "list",
    "list_models",
    "model_info",
    "register_model",
    "resolve_method",
]
