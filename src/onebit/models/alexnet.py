"""``binary_alexnet``: the binarized AlexNet of BNN (Hubara et al.) in the layout of the larq zoo.

Hubara, Courbariaux, Soudry, El-Yaniv, Bengio, "Binarized Neural Networks", NeurIPS 2016; Krizhevsky,
Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks", NeurIPS 2012.
Layout of larq zoo's ``BinaryAlexNet`` (larq/zoo, literature/binary_alex_net.py): convs 11x11/4 64,
5x5 192, 3x3 384, 384, 256, no biases, each followed by (max-pool 3/2 where AlexNet pools, then)
BatchNorm; FC 4096 -> BN -> 4096 -> BN -> classes -> BN.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..binarize import BinarizeConfig, binarize_
from ._apply import activation, scaled
from .registry import register_model

__all__ = ["binary_alexnet"]

#: (out_channels, kernel, stride, padding, max-pool after)
FEATURES = ((64, 11, 4, 2, True), (192, 5, 1, 2, True), (384, 3, 1, 1, False), (384, 3, 1, 1, False),
            (256, 3, 1, 1, True))


def _features(in_chans: int, binary: bool, width_mult: float) -> nn.Sequential:
    layers, cin = OrderedDict(), in_chans
    for i, (cout, k, stride, pad, pool) in enumerate(FEATURES):
        cout = scaled(cout, width_mult)
        pooling = [nn.MaxPool2d(3, 2)] if pool else []
        layers[f"conv{i}"] = nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, bias=False), *pooling,
                                           nn.BatchNorm2d(cout), activation(binary))
        cin = cout
    return nn.Sequential(layers)


@register_model("binary_alexnet", layout="imagenet", input_size=(3, 224, 224), small_size=64, block_based=False,
                published_params=61_859_192, published_count="keras",
                paper="Hubara et al., 'Binarized Neural Networks', NeurIPS 2016; larq zoo BinaryAlexNet")
def binary_alexnet(*, num_classes: int = 1000, in_chans: int = 3, method: BinarizeConfig | None = None,
                   width_mult: float = 1.0) -> nn.Module:
    """Binary AlexNet. larq zoo publishes 61,859,192 parameters (Keras count: BatchNorm moving mean and
    variance included, BatchNorm without scale); the same layers here have 61,848,720 torch parameters for
    1000 classes (BatchNorm with scale, statistics as buffers). An adaptive average pool to 6x6 (the
    identity at 224x224) lets it run on inputs from 64x64. Unlike larq's, the first conv and the last FC
    stay float when binarized (as in the BNN paper's own experiments and ``binarize_``'s defaults).
    ``width_mult`` scales every conv and hidden FC width."""
    binary, c, hidden = method is not None, scaled(256, width_mult), scaled(4096, width_mult)
    model = nn.Sequential(OrderedDict(
        features=_features(in_chans, binary, width_mult),
        pool=nn.AdaptiveAvgPool2d(6),
        flatten=nn.Flatten(),
        fc1=nn.Sequential(nn.Linear(c * 36, hidden, bias=False), nn.BatchNorm1d(hidden), activation(binary)),
        fc2=nn.Sequential(nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), activation(binary)),
        fc=nn.Linear(hidden, num_classes, bias=False),
        fc_norm=nn.BatchNorm1d(num_classes),
    ))
    return model if method is None else binarize_(model, method)
