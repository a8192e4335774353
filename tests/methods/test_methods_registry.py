"""onebit.methods: names, get/list/combine, Method validation, JSON and checkpoint round trips, citations."""

import dataclasses
import importlib
import json

import pytest
import torch
from torch import nn

import onebit
from onebit import methods
from onebit.binarize import BinarizeConfig
from onebit.methods import Method

NAMES = ["bireal", "bnn", "bnn+", "dybnn", "elastic-link", "reactnet", "sbnn", "si-bnn", "xnor"]
FILES = {"bnn": "bnn", "xnor": "xnor", "bireal": "bireal", "reactnet": "reactnet", "si-bnn": "si_bnn",
         "sbnn": "sbnn", "dybnn": "dybnn", "bnn+": "bnn_plus", "elastic-link": "elastic_link"}


def test_list_and_get():
    assert methods.list() == NAMES
    for name in NAMES:
        m = methods.get(name)
        assert isinstance(m, Method) and isinstance(m, BinarizeConfig)
        assert m.method == m.name == name
        assert methods.get(name) is not m and methods.get(name) == m  # a fresh copy each time
        assert methods.get(m) is m
    assert sorted(methods.modifiers()) == ["bnn+", "dybnn", "elastic-link", "sbnn"]


def test_unknown_names_and_bad_specs_list_valid_names():
    with pytest.raises(ValueError, match="si-bnn"):
        methods.get("sibnn")
    with pytest.raises(ValueError, match="name"):
        methods.get(3)
    with pytest.raises(ValueError, match="valid"):
        methods.get("bnn", activation_fn="relu")


@pytest.mark.parametrize("name", NAMES)
def test_one_file_per_method_citing_its_paper(name):
    module = importlib.import_module(f"onebit.methods.{FILES[name]}")
    method = methods.get(name)
    assert method.paper and method.paper.split(",")[0].split()[0] in module.__doc__
    assert any(tag in method.paper for tag in ("arXiv", "doi", "AAAI", "ECCV", "ICASSP", "NeurIPS"))


@pytest.mark.parametrize("name", NAMES)
def test_json_and_checkpoint_round_trips(name, tmp_path):
    m = methods.get(name)
    text = m.to_json()
    assert json.loads(text)["config_type"] == "method"
    again = BinarizeConfig.from_json(text)
    assert type(again) is Method and again == m
    assert Method.from_json(text) == m
    model = onebit.binarize_(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 2, 1)), m)
    onebit.save_checkpoint(tmp_path / "m.pt", model)
    loaded = onebit.load_checkpoint(tmp_path / "m.pt")
    assert loaded["config"] == m
    fresh = onebit.binarize_(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 2, 1)),
                             loaded["config"])
    fresh.load_state_dict(loaded["state_dict"])
    x = torch.randn(2, 1, 7, 7)
    model.eval(), fresh.eval()
    assert torch.equal(model(x), fresh(x))


def test_plain_binarize_config_json_is_unchanged():
    config = BinarizeConfig()
    assert "config_type" not in config.to_dict()
    with pytest.raises(ValueError, match="config_type"):
        BinarizeConfig.from_dict({**config.to_dict(), "config_type": "nonsense"})


@pytest.mark.parametrize("changes, match", [
    ({"input_quantizer": {"name": "si_heaviside", "lower": 0.5}}, "window"),
    ({"input_quantizer": {"name": "dysign", "reduction": 0}}, "reduction"),
    ({"weight_quantizer": {"name": "domain_weight", "ste": "tanh"}}, "ste"),
    ({"input_quantizer": {"name": "swish_sign", "beta": -5}}, "beta"),
    ({"weight_quantizer": {"name": "scaled_sign", "granularity": "pixel"}}, "granularity"),
    ({"input_quantizer": "no_such"}, "valid names"),
    ({"regularizers": {"expected_connections": {"ec": 0.1, "gamma": 1.0}}}, "gamma"),
    ({"regularizers": {"expected_connections": {"ec": 1.5}}}, "ec"),
    ({"regularizers": {"bnn+": {"kind": "l3"}}}, "kind"),
    ({"regularizers": {"l0": {}}}, "unknown regularizer"),
    ({"elastic_link": {"gate": "pixel"}}, "gate"),
    ({"elastic_link": {"where": "3x3"}}, "where"),
    ({"elastic_link": {"colour": 1}}, "unknown elastic_link"),
    ({"elastic_link": "yes"}, "elastic_link"),
    ({"latent_clip": -1.0}, "latent_clip"),
    ({"shortcut": "dense"}, "shortcut"),
    ({"activation": "gelu"}, "activation"),
    ({"activation": "dyprelu", "activation_options": {"reduction": 16, "color": 1}}, None),
    ({"recipe": {"lr": object()}}, "JSON"),
    ({"modifies": {"nonsense": 1}}, "unknown fields"),
    ({"version": 99}, "version"),
])
def test_invalid_hyper_parameters_give_clear_errors(changes, match):
    if match is None:  # activation options are checked when a block is built
        with pytest.raises(ValueError, match="bad options"):
            onebit.nn.BinaryConvUnit(4, 4, spec=methods.get("dybnn", **changes))
        return
    with pytest.raises(ValueError, match=match):
        methods.get("reactnet", **changes)


def test_with_returns_a_validated_copy():
    base = methods.get("reactnet")
    changed = base.with_(pad_value=1.0, elastic_link=True)
    assert changed.pad_value == 1.0 and changed.elastic_link == {} and base.elastic_link is None
    assert base.with_(elastic_link=False).elastic_link is None
    assert dataclasses.replace(base) == base


def test_combine_applies_modifiers_onto_a_base():
    dy = methods.combine("reactnet", "dybnn")
    assert dy.method == "reactnet + dybnn" and "ReActNet" in dy.paper and "Dynamic" in dy.paper
    assert dy.dynamic_threshold and dy.activation == "dyprelu"
    reference = methods.get("dybnn")
    assert dy.with_(method="dybnn", paper=reference.paper, modifies=reference.modifies) == reference
    el = methods.combine("reactnet", "elastic-link")
    assert el.input_quantizer == "rsign" and el.activation == "rprelu" and el.elastic_link["gate"] == "channel"
    both = methods.combine("bnn+", "sbnn")
    assert both.input_quantizer["name"] == "swish_sign" and both.weight_quantizer["name"] == "domain_weight"
    assert set(both.regularizers) == {"bnn+", "expected_connections"}  # merged, not replaced
    three = methods.combine("reactnet", "dybnn", "elastic-link", "sbnn")
    assert three.dynamic_threshold and three.elastic_link and three.weight_quantizer["name"] == "domain_weight"
    with pytest.raises(ValueError, match="modifier"):
        methods.combine("reactnet", "xnor")
    assert not methods.get("si-bnn").dynamic_threshold


def test_stages_for_two_step_recipes():
    first, second = methods.get("reactnet").stages()
    assert first.weight_quantizer is None and first.input_quantizer == "rsign" and second == methods.get("reactnet")
    assert methods.get("si-bnn").stages() == [methods.get("si-bnn")]
