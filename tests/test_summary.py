"""summary: totals are right and a golden text pins the table format."""

import torch
from torch import nn

import onebit
from onebit.nn import BinaryConv2d, BinaryLinear

GOLDEN = """\
Layer                    Type                   Output shape      1-bit params  32-bit params  Memory (KiB)    Binary MACs     Float MACs
-----------------------------------------------------------------------------------------------------------------------------------------
0                        Conv2d                 (8, 8, 8)                    0             80          0.31              0          4,608
1                        BatchNorm2d            (8, 8, 8)                    0             16          0.06              0              0
2                        BinaryConv2d[fake]     (16, 4, 4)               1,152              0          0.14         18,432              0
3                        BatchNorm2d            (16, 4, 4)                   0             32          0.12              0              0
4                        Flatten                (256,)                       0              0          0.00              0              0
5                        BinaryLinear[fake]     (64,)                   16,384             64          2.25         16,384              0
6                        BinaryLinear[fake]     (10,)                      640             10          0.12              0            640
7                        Linear                 (10,)                        0            110          0.43              0            100
-----------------------------------------------------------------------------------------------------------------------------------------
Total params: 18,488 (1-bit: 18,176, 32-bit: 312)
Model size: 3.44 KiB (float equivalent 72.22 KiB, compression 21.01x)
MACs per sample: 40,164 (binary 86.68%, float 13.32%)"""


def model():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
        BinaryConv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
        nn.Flatten(), BinaryLinear(256, 64), BinaryLinear(64, 10, input_quantizer=None), nn.Linear(10, 10),
    )


def test_golden_table(capsys):
    result = onebit.summary(model(), (1, 1, 8, 8))
    printed = capsys.readouterr().out.rstrip("\n")
    assert printed == GOLDEN
    assert str(result) == GOLDEN


def test_totals():
    s = onebit.summary(model(), (2, 1, 8, 8), print_table=False)
    assert s.binary_params == 8 * 16 * 9 + 256 * 64 + 64 * 10
    assert s.total_params == sum(p.numel() for p in model().parameters())
    assert s.memory_bytes == s.binary_params / 8 + s.float_params * 4
    assert s.float_equivalent_bytes == 4 * s.total_params
    assert s.binary_macs == 16 * 4 * 4 * 8 * 9 + 64 * 256  # per sample, independent of batch
    assert abs(s.compression_ratio - s.float_equivalent_bytes / s.memory_bytes) < 1e-12
    assert 0 < s.binary_mac_share < 1


def test_summary_of_float_model_and_training_flag_restored():
    m = nn.Sequential(nn.Linear(4, 3))
    m.train()
    s = onebit.summary(m, (1, 4), print_table=False)
    assert s.binary_params == 0 and s.compression_ratio == 1.0 and s.binary_mac_share == 0.0
    assert m.training


def test_summary_after_binarize_counts_binary_layers():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    onebit.binarize_(m)
    s = onebit.summary(m, (1, 1, 8, 8), print_table=False)
    assert s.binary_params == 4 * 4 * 9
    assert [layer.type for layer in s.layers][1] == "BinaryConv2d[fake]"


def test_parameters_of_containers_are_counted_once():
    """An Elastic-Link (a container holding the binary conv) has a gate of its own: it is counted,
    and the conv inside it is not counted twice."""
    model = onebit.models.create("cnn28", num_classes=10, in_chans=1, method="elastic-link")
    stats = onebit.summary(model, (1, 1, 28, 28), print_table=False)
    assert stats.total_params == sum(p.numel() for p in model.parameters())
