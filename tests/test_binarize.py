"""binarize_: swaps layers in place, keeps first/last float by default, config round-trips and is saved."""

import json

import pytest
import torch
from torch import nn

import onebit
from onebit import BinarizeConfig, binarize_
from onebit.nn import BinaryConv2d, BinaryLinear


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.Linear(32, 10),
    )


def kinds(model):
    return [type(m).__name__ for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_default_keeps_first_and_last_float():
    model = small_model()
    assert binarize_(model, BinarizeConfig()) is model
    assert kinds(model) == ["Conv2d", "BinaryConv2d", "BinaryConv2d", "BinaryLinear", "Linear"]
    assert onebit.get_config(model) == BinarizeConfig()


def test_parameters_are_kept():
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    binarize_(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_binarizing_first_or_last_warns():
    model = small_model()
    with pytest.warns(UserWarning, match="first layer '0'"):
        binarize_(model, BinarizeConfig(keep_first=False))
    assert isinstance(model[0], BinaryConv2d)
    model = small_model()
    with pytest.warns(UserWarning, match="last layer '7'"):
        binarize_(model, BinarizeConfig(keep_last=False))
    assert isinstance(model[7], BinaryLinear)


def test_quantizers_and_pad_value_reach_layers():
    model = small_model()
    binarize_(model, BinarizeConfig(input_quantizer="approx_sign", weight_quantizer={"name": "xnor_weight"}, pad_value=1.0))
    layer = model[2][0]
    assert type(layer.input_quantizer).__name__ == "ApproxSign"
    assert type(layer.weight_quantizer).__name__ == "XnorWeight"
    assert layer.pad_value == 1.0


def test_filter_fn_and_overrides():
    model = small_model()
    config = BinarizeConfig(overrides={r"2\.0": {"input_quantizer": None, "pad_value": 1.0}, r"6": {"skip": True}})
    binarize_(model, config, filter_fn=lambda m, name: name != "3")
    assert kinds(model) == ["Conv2d", "BinaryConv2d", "Conv2d", "Linear", "Linear"]
    assert model[2][0].input_quantizer is None and model[2][0].pad_value == 1.0


def test_binarized_model_trains_one_step():
    model = binarize_(small_model())
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)


def test_config_json_round_trip():
    config = BinarizeConfig(input_quantizer={"name": "ste_sign", "clip_value": 1.5}, weight_quantizer="xnor_weight",
                            pad_value=1.0, keep_last=False, overrides={"layer.*": {"skip": True}}, method="bnn")
    text = config.to_json()
    assert json.loads(text)["version"] == 1
    assert BinarizeConfig.from_json(text) == config
    # a Quantizer instance is normalized to its JSON-safe config
    from onebit.quantizers import SwishSign
    assert BinarizeConfig(input_quantizer=SwishSign(3.0)).input_quantizer == {"name": "swish_sign", "beta": 3.0}


@pytest.mark.parametrize("kwargs,match", [
    (dict(input_quantizer="nope"), "valid names"),
    (dict(weight_quantizer=3), "must be None"),
    (dict(overrides={"(": {}}), "regex"),
    (dict(overrides={"a": {"colour": 1}}), "unknown keys"),
    (dict(version=99), "version"),
])
def test_invalid_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BinarizeConfig(**kwargs)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown BinarizeConfig fields"):
        BinarizeConfig.from_dict({"input_quantzer": "ste_sign"})


def test_bad_arguments():
    with pytest.raises(TypeError):
        binarize_("model")
    with pytest.raises(TypeError):
        binarize_(small_model(), {"input_quantizer": "ste_sign"})


def test_checkpoint_saves_config(tmp_path):
    model = binarize_(small_model(), BinarizeConfig(pad_value=1.0, method="bnn"))
    path = tmp_path / "model.pt"
    onebit.save_checkpoint(path, model, extra={"epoch": 3})
    loaded = onebit.load_checkpoint(path)
    assert loaded["config"] == onebit.get_config(model)
    assert loaded["extra"] == {"epoch": 3}
    fresh = binarize_(small_model(), loaded["config"])
    fresh.load_state_dict(loaded["state_dict"])
    x = torch.randn(2, 1, 8, 8)
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))


def test_load_checkpoint_rejects_other_files(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not an onebit checkpoint"):
        onebit.load_checkpoint(path)
