"""fit / evaluate on tiny synthetic data: learning, files, resume equivalence, param groups, clipping,
distillation, regularizers, Bop, schedules, two-stage training."""

import csv
import importlib.util
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import onebit
from onebit.train import (
    Bop,
    Callback,
    Recipe,
    binarized_model,
    binary_weights,
    build_loaders,
    build_optimizer,
    build_regularizer,
    distillation_loss,
    evaluate,
    fit,
    latent_clip,
    param_groups,
    seed_everything,
    train_recipe,
)
from onebit.train._util import optional_import
from onebit.train.fit import rng_state, set_rng_state
from onebit.train.metrics import COLUMNS
from onebit.train.optim import lr_multiplier
from onebit.train.recipe import OptimConfig, ScheduleConfig

# +1 padding: with zero padding the tiny maps of the 8x8 task learn much more slowly
METHOD = {"input_quantizer": "ste_sign", "weight_quantizer": "ste_sign", "pad_value": 1.0}
methods = optional_import("onebit.methods")
needs_methods = pytest.mark.skipif(methods is None, reason="needs onebit.methods")


def tiny_recipe(out_dir, *overrides: str) -> Recipe:
    base = Recipe.from_dict({
        "model": {"name": "small_cnn", "method": METHOD, "kwargs": {"width": 8}},
        "data": {"name": "synthetic", "batch_size": 32},
        "optim": {"lr": 1e-2},
        "epochs": 3,
        "log": {"every": 0, "plot": False},
        "out_dir": None if out_dir is None else str(out_dir),
    })
    return base.override(list(overrides))


def setup_run(recipe: Recipe):
    seed_everything(recipe.seed)
    model = binarized_model(recipe.model)
    train_loader, val_loader = build_loaders(recipe)
    return model, train_loader, val_loader


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_loss_falls_and_run_files_are_written(tmp_path):
    # 8 epochs: over seeds 0-3 the loss falls to 0.20-0.42 of its first value (4 epochs: 0.58-0.74,
    # too close to a threshold to be a stable test)
    recipe = tiny_recipe(tmp_path, "epochs=8", "log.plot=true")
    model, train_loader, val_loader = setup_run(recipe)
    result = fit(model, train_loader, val_loader, recipe)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.6 * losses[0]
    assert result.history[-1]["val_acc"] > 0.5  # chance is 0.1
    assert all(0 <= row["flip_ratio"] <= 1 for row in result.history)

    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 9))
    assert math.isclose(float(rows[-1][COLUMNS.index("val_acc")]), result.history[-1]["val_acc"], rel_tol=1e-5)
    assert Recipe.from_yaml(tmp_path / "recipe.yaml") == recipe

    best = onebit.load_checkpoint(tmp_path / "best.pt")
    assert best["extra"]["epoch"] == result.best_epoch
    assert best["extra"]["metrics"]["val_acc"] == result.best_val_acc == max(r["val_acc"] for r in result.history)
    assert best["config"] == onebit.get_config(model)
    last = onebit.load_checkpoint(tmp_path / "last.pt")
    assert last["extra"]["epoch"] == 8
    assert all(torch.equal(last["state_dict"][k], v) for k, v in model.state_dict().items())
    assert (tmp_path / "curves.png").exists() == (importlib.util.find_spec("matplotlib") is not None)


class Killed(Exception):
    pass


class KillAfter(Callback):
    """Simulates a SIGKILL right after epoch ``epoch``'s checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise Killed


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    # shift augmentation and shuffling both draw from the global RNG: resume must restore it
    overrides = ["data.augment=shift", "schedule.warmup_epochs=0.5"]
    reference = tiny_recipe(tmp_path / "reference", *overrides)
    model_a, *loaders = setup_run(reference)
    result_a = fit(model_a, *loaders, reference)

    recipe = tiny_recipe(tmp_path / "killed", *overrides)
    model_b, *loaders = setup_run(recipe)
    with pytest.raises(Killed):
        fit(model_b, *loaders, recipe, callbacks=[KillAfter(2)])
    model_c, *loaders = setup_run(recipe.override(["seed=99"]))  # any init: resume replaces it
    result_c = fit(model_c, *loaders, recipe, resume=True)

    assert_same_weights(model_a, model_c)
    assert without_seconds(result_c.history) == without_seconds(result_a.history)
    with open(tmp_path / "killed" / "metrics.csv", newline="") as f:
        assert len(list(csv.reader(f))) == 1 + 3


def test_resume_extends_a_finished_run(tmp_path):
    # "train 2 epochs, later resume to 3" equals 3 epochs straight, with a schedule that does not
    # depend on the total number of epochs
    reference = tiny_recipe(tmp_path / "reference", "schedule.name=none")
    model_a, *loaders = setup_run(reference)
    fit(model_a, *loaders, reference)

    short = tiny_recipe(tmp_path / "run", "schedule.name=none", "epochs=2")
    model_b, *loaders = setup_run(short)
    fit(model_b, *loaders, short)
    fit(model_b, *loaders, short.override(["epochs=3"]), resume=True)
    assert_same_weights(model_a, model_b)


def test_resume_without_checkpoint_starts_fresh_and_rejects_other_methods(tmp_path, capsys):
    recipe = tiny_recipe(tmp_path, "epochs=1")
    model, *loaders = setup_run(recipe)
    fit(model, *loaders, recipe, resume=True)
    assert "starting from scratch" in capsys.readouterr().out
    other = recipe.override(["model.method={input_quantizer: ste_sign, weight_quantizer: xnor_weight}"])
    model, *loaders = setup_run(other)
    with pytest.raises(ValueError, match="was trained with binarize config"):
        fit(model, *loaders, other, resume=True)


def test_latent_binary_weights_get_no_weight_decay_by_default():
    model = binarized_model(tiny_recipe(None).model)
    latent = {id(p) for p in binary_weights(model)}
    assert latent
    groups = {g["name"]: g for g in param_groups(model, OptimConfig(weight_decay=1e-4))}
    assert {id(p) for p in groups["binary"]["params"]} == latent
    assert groups["binary"]["weight_decay"] == 0.0
    assert groups["weights"]["weight_decay"] == 1e-4
    assert groups["norm_bias"]["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in groups["norm_bias"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))

    optimizer = build_optimizer(model, OptimConfig(name="adamw", weight_decay=1e-4, latent_weight_decay=True))
    assert {g["name"]: g["weight_decay"] for g in optimizer.param_groups}["binary"] == 1e-4


def test_latent_weights_are_clipped_and_unclipped_warns(tmp_path):
    recipe = tiny_recipe(None, "epochs=1", "optim.clip_latent_weights=0.02")
    model, *loaders = setup_run(recipe)
    fit(model, *loaders, recipe)
    assert max(w.abs().max().item() for w in binary_weights(model)) <= 0.02
    with pytest.warns(UserWarning, match="not clipped"):
        fit(model, *loaders, recipe.override(["optim.clip_latent_weights=null"]))


def test_distillation_loss():
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10)
    assert distillation_loss(teacher, teacher).abs() < 1e-6
    loss = distillation_loss(student, teacher, temperature=2.0)
    loss.backward()
    # same gradient as the soft cross-entropy -sum softmax(t/T) log_softmax(s/T), times T^2
    soft = -(teacher.div(2).softmax(-1) * student.div(2).log_softmax(-1)).sum(-1).mean() * 4
    (expected,) = torch.autograd.grad(soft, student)
    assert loss > 0 and torch.allclose(student.grad, expected, atol=1e-6)


def test_distillation_from_a_teacher_checkpoint(tmp_path):
    teacher_recipe = tiny_recipe(tmp_path / "teacher", "epochs=1", "model.method=null")
    train_recipe(teacher_recipe)
    student = tiny_recipe(tmp_path / "student", "epochs=1", f"distill.teacher={tmp_path / 'teacher' / 'best.pt'}",
                          "distill.alpha=0.5", "distill.temperature=2")
    result = train_recipe(student)
    assert math.isfinite(result.history[-1]["train_loss"])
    assert (tmp_path / "student" / "best.pt").exists()


def test_distillation_with_a_teacher_module_changes_training():
    recipe = tiny_recipe(None, "epochs=1")
    model_a, *loaders = setup_run(recipe)
    plain = fit(model_a, *loaders, recipe)
    model_b, *loaders = setup_run(recipe)
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    taught = fit(model_b, *loaders, recipe, teacher=teacher)
    assert taught.history[0]["train_loss"] != plain.history[0]["train_loss"]
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.fixture
def counting_regularizer():
    """A term in onebit.regularizers' registry that records every task loss it sees."""
    registry = pytest.importorskip("onebit.regularizers").REGULARIZERS
    calls = []

    class Counting(nn.Module):
        def __init__(self, model, scale=1.0):
            super().__init__()
            self.model, self.scale = [model], scale

        @staticmethod
        def validate(scale=1.0):
            pass

        def penalty(self, task_loss):
            calls.append(float(task_loss.detach()))
            return self.scale * sum(w.square().sum() for w in binary_weights(self.model[0]))

        def forward(self, loss):
            return loss + self.penalty(loss)

    registry.register("test_counting")(Counting)
    yield calls
    registry._entries.pop("test_counting")  # the registry has no public unregister


def test_regularizer_is_called_every_step(counting_regularizer):
    recipe = tiny_recipe(None, "epochs=1", "regularizer.name=test_counting", "regularizer.options={scale: 0.1}")
    model, train_loader, val_loader = setup_run(recipe)
    fit(model, train_loader, val_loader, recipe)
    assert len(counting_regularizer) == len(train_loader)
    assert all(loss > 0 for loss in counting_regularizer)
    with pytest.raises(ValueError, match="unknown regularizer 'nope'"):
        fit(model, train_loader, val_loader, recipe.override(["regularizer.name=nope"]))


@needs_methods
def test_method_regularizer_trains_its_scales_and_resumes(tmp_path):
    # BNN+ on layers without their own scale: the regularizer holds trainable alphas
    recipe = tiny_recipe(tmp_path, "epochs=1", "model.method=bireal", "regularizer.name=bnn+",
                         "regularizer.options={lam: 1.0e-3, kind: l2}")
    model, *loaders = setup_run(recipe)
    regularizer = build_regularizer(model, recipe.regularizer)
    alphas = {k: v.detach().clone() for k, v in regularizer.state_dict().items()}
    assert alphas
    fit(model, *loaders, recipe)
    saved = onebit.load_checkpoint(tmp_path / "last.pt")["extra"]["regularizer"]
    assert saved.keys() == alphas.keys()
    assert any(not torch.equal(saved[k], alphas[k]) for k in alphas)  # the optimizer trained them
    model, *loaders = setup_run(recipe)
    fit(model, *loaders, recipe.override(["epochs=2"]), resume=True)  # restores the alphas too


@needs_methods
def test_latent_clip_follows_the_method():
    model = binarized_model(tiny_recipe(None).model)
    assert latent_clip(model, OptimConfig()) == 1.0  # a plain BinarizeConfig
    assert latent_clip(model, OptimConfig(clip_latent_weights=None)) is None
    sbnn = binarized_model(tiny_recipe(None, "model.method=sbnn").model)
    assert latent_clip(sbnn, OptimConfig()) == 1.5 and latent_clip(sbnn, OptimConfig(clip_latent_weights=0.3)) == 0.3


@needs_methods
def test_weight_decay_rules_of_methods():
    model = binarized_model(tiny_recipe(None, "model.method=reactnet").model)
    groups = param_groups(model, OptimConfig(weight_decay=1e-5, weight_decay_rule="all"))
    assert [g["name"] for g in groups] == ["decay"] and len(groups[0]["params"]) == len(list(model.parameters()))
    groups = {g["name"]: g for g in param_groups(model, OptimConfig(weight_decay=1e-5, weight_decay_rule="method"))}
    assert set(groups) == {"decay", "no_decay"}  # ReActNet's rule: convs decayed, BN and FC not
    with pytest.raises(ValueError, match="weight-decay rule must be one of"):
        param_groups(model, OptimConfig(weight_decay_rule="bogus"))


@needs_methods
def test_two_stage_uses_the_methods_first_step(tmp_path):
    train_recipe(tiny_recipe(tmp_path, "epochs=1", "two_stage=true", "model.method=reactnet"))
    first = onebit.load_checkpoint(tmp_path / "stage1" / "last.pt")["config"]
    second = onebit.load_checkpoint(tmp_path / "stage2" / "last.pt")["config"]
    assert first.method == "reactnet:step1" and first.weight_quantizer is None
    assert second.method == "reactnet" and second.weight_quantizer is not None


def test_bop_flips_signs_and_keeps_magnitudes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(64, 3))
    onebit.binarize_(model)
    optimizer = build_optimizer(model, OptimConfig(name="bop", bop_gamma=0.5, bop_threshold=0.0))
    assert isinstance(optimizer, Bop)
    latent, head = model[2].weight, model[4].weight
    before, head_before = latent.detach().clone(), head.detach().clone()
    x = torch.randn(8, 1, 8, 8)
    model(x).square().mean().backward()
    grad = latent.grad.clone()
    optimizer.step()
    flip = (0.5 * grad).abs().gt(0) & ((grad >= 0) == (before >= 0))
    assert flip.any() and torch.equal(latent.detach(), torch.where(flip, -before, before))
    assert not torch.equal(head.detach(), head_before)  # Adam updates the real-valued parameters
    state = optimizer.state_dict()
    build_optimizer(model, OptimConfig(name="bop")).load_state_dict(state)


def test_schedules():
    cosine = lr_multiplier(ScheduleConfig(name="cosine", warmup_epochs=1, min_lr_ratio=0.1), 10, 5)
    assert [round(cosine(s), 3) for s in range(3)] == [round((s + 1) / 11, 3) for s in range(3)]
    assert cosine(10) == pytest.approx(1.0) and cosine(50) == pytest.approx(0.1)
    step = lr_multiplier(ScheduleConfig(name="step", milestones=[2, 4], gamma=0.5), 10, 5)
    assert [step(s) for s in (0, 19, 20, 39, 40)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    onecycle = lr_multiplier(ScheduleConfig(name="onecycle"), 4, 5)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=20, cycle_momentum=False)
    for s in range(20):
        assert onecycle(s) == pytest.approx(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if s < 19:
            reference.step()


def test_evaluate_counts_accuracy_and_loss():
    x = torch.arange(6.0).reshape(6, 1)
    y = torch.tensor([0, 1, 0, 1, 0, 0])
    model = nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0], [0.0]]))
        model.bias.copy_(torch.tensor([1.0, 0.0]))  # always predicts class 0
    model.train()
    metrics = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=4))
    assert metrics["accuracy"] == pytest.approx(4 / 6) and metrics["count"] == 6
    assert metrics["loss"] == pytest.approx(nn.functional.cross_entropy(model(x), y).item())
    assert model.training  # mode restored


def test_callback_can_stop_early(tmp_path):
    class StopAfterOne(Callback):
        def on_epoch_end(self, state):
            state.stop = True

    recipe = tiny_recipe(tmp_path)
    model, *loaders = setup_run(recipe)
    assert len(fit(model, *loaders, recipe, callbacks=[StopAfterOne()]).history) == 1


def test_two_stage_recipe(tmp_path):
    result = train_recipe(tiny_recipe(tmp_path, "epochs=1", "two_stage=true"))
    with open(tmp_path / "stage1" / "metrics.csv", newline="") as f:
        stage1 = list(csv.DictReader(f))
    assert stage1[0]["flip_ratio"] == ""  # stage 1 has real weights: nothing to flip
    assert result.out_dir == str(tmp_path / "stage2") and result.history[0]["flip_ratio"] is not None
    first = onebit.load_checkpoint(tmp_path / "stage1" / "last.pt")
    second = onebit.load_checkpoint(tmp_path / "stage2" / "last.pt")
    assert first["config"].weight_quantizer is None and second["config"].weight_quantizer == "ste_sign"
    assert (tmp_path / "recipe.yaml").exists()


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(5)
    state = rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), __import__("random").random(), __import__("numpy").random.rand())
    assert torch.equal(expected[0], again[0]) and expected[1:] == again[1:]


def test_prune_recipe_prunes_once_keeps_masks_and_resumes(tmp_path):
    """recipe.prune: masks appear at the start of epoch 1, stay fixed after it, survive a kill + resume
    (same weights as an uninterrupted run) and a rebuild from the checkpoint (load_trained_model)."""
    from onebit.sparsity import MaskedWeight, sparsity_report
    from onebit.train import load_trained_model

    overrides = ["prune.sparsity=0.5", "prune.epoch=1", "prune.granularity=block"]
    reference = tiny_recipe(tmp_path / "reference", *overrides)
    model_a, *loaders = setup_run(reference)
    masks = {}

    class Watch(Callback):
        def on_epoch_end(self, state):
            found = {n: m.mask.clone() for n, m in model_a.named_modules() if isinstance(m, MaskedWeight)}
            assert bool(found) == (state.epoch >= 2), state.epoch       # state.epoch counts finished epochs
            for n, mask in found.items():
                assert torch.equal(masks.setdefault(n, mask), mask)      # fixed once pruned

    fit(model_a, *loaders, reference, callbacks=[Watch()])
    assert masks and sparsity_report(model_a).sparsity >= 0.5

    recipe = tiny_recipe(tmp_path / "killed", *overrides)
    model_b, *loaders = setup_run(recipe)
    with pytest.raises(Killed):
        fit(model_b, *loaders, recipe, callbacks=[KillAfter(2)])
    model_c, *loaders = setup_run(recipe)
    fit(model_c, *loaders, recipe, resume=True)
    assert_same_weights(model_a, model_c)

    rebuilt, _, _ = load_trained_model(tmp_path / "killed" / "last.pt")
    assert_same_weights(model_a, rebuilt)
    with pytest.raises(ValueError, match="prune.sparsity"):
        tiny_recipe(None, "prune.sparsity=1.0")
