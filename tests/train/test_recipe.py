"""Recipes: shipped YAML loads, YAML round trip, --set overrides coerced to field types, clear errors."""

import dataclasses

import pytest

from onebit.train.recipe import OptimConfig, Recipe, list_recipes, load_recipe


def test_shipped_recipes_load_and_round_trip():
    names = list_recipes()
    assert {"fashion_mnist_bnn", "cifar10_resnet18", "digits_bnn"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert Recipe.from_yaml_str(recipe.to_yaml()) == recipe


def test_yaml_file_round_trip(tmp_path):
    recipe = load_recipe("fashion_mnist_bnn").override(
        ["optim.betas=0.8,0.99", "schedule.milestones=[2,5]", "model.method={input_quantizer: ste_sign}",
         "model.kwargs.width=8", "data.limit=100", "distill.teacher=runs/float/best.pt"])
    path = tmp_path / "r.yaml"
    recipe.save(path)
    again = Recipe.from_yaml(path)
    assert again == recipe
    assert again.optim.betas == (0.8, 0.99) and again.model.kwargs == {"width": 8}


def test_yaml_reads_exponent_floats():
    # PyYAML (YAML 1.1) reads "1e-3" as a string; the float field still gets a float.
    recipe = Recipe.from_yaml_str("optim:\n  lr: 1e-3\nepochs: '4'\n")
    assert recipe.optim.lr == 0.001 and isinstance(recipe.optim.lr, float)
    assert recipe.epochs == 4


def test_empty_yaml_and_empty_sections_give_defaults():
    assert Recipe.from_yaml_str("") == Recipe()
    assert Recipe.from_yaml_str("distill:\n") == Recipe()


@pytest.mark.parametrize("assignment, getter, expected", [
    ("optim.lr=3e-4", lambda r: r.optim.lr, 3e-4),
    ("epochs=7", lambda r: r.epochs, 7),
    ("two_stage=yes", lambda r: r.two_stage, True),
    ("amp=False", lambda r: r.amp, False),
    ("optim.betas=[0.5, 0.9]", lambda r: r.optim.betas, (0.5, 0.9)),
    ("optim.betas=0.5,0.9", lambda r: r.optim.betas, (0.5, 0.9)),
    ("schedule.milestones=[3, 6]", lambda r: r.schedule.milestones, [3, 6]),
    ("optim.clip_latent_weights=null", lambda r: r.optim.clip_latent_weights, None),
    ("optim.clip_latent_weights=method", lambda r: r.optim.clip_latent_weights, "method"),
    ("optim.clip_latent_weights=1.3", lambda r: r.optim.clip_latent_weights, 1.3),
    ("data.limit=None", lambda r: r.data.limit, None),
    ("data.augment=shift_flip", lambda r: r.data.augment, "shift_flip"),
    ("model.method=null", lambda r: r.model.method, None),
    ("model.method=xnor", lambda r: r.model.method, "xnor"),
    ("model.method=[reactnet, dybnn]", lambda r: r.model.method, ["reactnet", "dybnn"]),
    ("model.method={weight_quantizer: xnor_weight}", lambda r: r.model.method, {"weight_quantizer": "xnor_weight"}),
    ("model.kwargs.width=8", lambda r: r.model.kwargs["width"], 8),
    ("model.name=123", lambda r: r.model.name, "123"),  # a plain string field takes the text verbatim
    ("out_dir=runs/a=b", lambda r: r.out_dir, "runs/a=b"),  # only the first '=' splits
])
def test_override_coerces_to_field_type(assignment, getter, expected):
    value = getter(Recipe().override([assignment]))
    assert value == expected and type(value) is type(expected)


def test_override_returns_a_new_recipe():
    recipe = Recipe()
    changed = recipe.override(["optim.lr=0.5"])
    assert recipe.optim.lr == 1e-3 and changed.optim.lr == 0.5


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown recipe key 'optim.lrr'; did you mean 'optim.lr'\?") as info:
        Recipe().override(["optim.lrr=1"])
    assert "optim.weight_decay" in str(info.value) and "schedule.warmup_epochs" in str(info.value)
    with pytest.raises(ValueError, match="Valid keys:"):
        Recipe().override(["nonsense=1"])
    with pytest.raises(ValueError, match="unknown recipe key 'optim.lr.x'"):
        Recipe().override(["optim.lr.x=1"])


def test_unknown_yaml_key_lists_valid_keys():
    with pytest.raises(ValueError, match=r"unknown optim key 'lrr'; did you mean 'lr'\? Valid keys: name, lr,"):
        Recipe.from_yaml_str("optim:\n  lrr: 0.1\n")
    with pytest.raises(ValueError, match="unknown recipe key 'epoch'"):
        Recipe.from_yaml_str("epoch: 3\n")


@pytest.mark.parametrize("assignment, message", [
    ("optim.lr=abc", r"optim.lr: expected float, got 'abc'"),
    ("optim.lr=-1", r"optim.lr: must be > 0"),
    ("optim.name=rmsprop", r"optim.name: 'rmsprop' is not one of \['adam', 'adamw', 'sgd', 'bop'\]"),
    ("epochs=0", r"epochs: must be >= 1"),
    ("epochs=1.5", r"epochs: expected int"),
    ("data.augment=maybe", r"data.augment: 'maybe' is not one of"),
    ("data.batch_size=0", r"data.batch_size: must be > 0"),
    ("amp=perhaps", r"amp: expected bool"),
    ("optim.betas=[0.1,0.2,0.3]", r"optim.betas: expected 2 values"),
    ("optim.betas=[0.9, 1.0]", r"optim.betas: must lie in \[0, 1\)"),
    ("schedule.milestones=[5,2]", r"schedule.milestones: must be increasing"),
    ("schedule.milestones=[50]", r"epochs: must cover schedule.milestones"),
    ("distill.alpha=2", r"distill.alpha: must lie in \[0, 1\]"),
    ("model.kwargs=3", r"model.kwargs: expected dict"),
    ("model.method=3", r"model.method: expected"),
    ("optim=1", r"'optim' is a section; set one of its keys"),
    ("optim.lr", r"must look like a.b=value"),
    ("version=2", r"version: this onebit reads recipe version 1"),
    ("device=gpu0", r"device: must be 'auto' or a torch device"),
    ("optim.clip_latent_weights=0", r"optim.clip_latent_weights: must be > 0, 'method' or null"),
    ("optim.clip_latent_weights=always", r"optim.clip_latent_weights: expected"),
])
def test_bad_values_are_rejected(assignment, message):
    with pytest.raises(ValueError, match=message):
        Recipe().override([assignment])


def test_bop_needs_the_onebit_weight_decay_rule():
    with pytest.raises(ValueError, match="must be 'onebit' with optim.name=bop"):
        Recipe().override(["optim.name=bop", "optim.weight_decay_rule=reactnet"])


def test_python_construction_is_validated_too():
    assert Recipe(optim={"lr": "0.1"}).optim == OptimConfig(lr=0.1)
    with pytest.raises(ValueError, match="optim.weight_decay: must be >= 0"):
        OptimConfig(weight_decay=-1.0)
    with pytest.raises(ValueError, match="optim: expected a mapping"):
        Recipe(optim=3)


def test_keys_name_every_field():
    keys = Recipe.keys()
    for section in ("model", "data", "optim", "schedule", "distill", "regularizer", "log"):
        cls = type(getattr(Recipe(), section))
        for f in dataclasses.fields(cls):
            assert any(k == f"{section}.{f.name}" or k.startswith(f"{section}.{f.name}.") for k in keys)
    assert "model.kwargs.<name>" in keys and "epochs" in keys


def test_load_recipe_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recipe 'nope'; shipped recipes: \[.*'digits_bnn'"):
        load_recipe("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")
