"""``onebit compare`` on the synthetic task: rows, files, resume, the table and the CLI's errors."""

import importlib
import json

import pytest
import torch

import onebit.compare as cmp
from onebit import cli
from onebit.compare import Budget, MethodRow, compare, markdown_table

TINY = Budget(epochs=1, limit=64, batch_size=32)
ARGS = dict(model="small_cnn", data="synthetic", budget=TINY, threads=(1,), overrides=["model.kwargs.width=8"])


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def quiet(_text):
    pass


def test_compare_trains_each_method_and_seed_and_writes_the_outputs(tmp_path):
    rows = compare(["bnn", "xnor"], seeds=2, out_dir=str(tmp_path), log=quiet, **ARGS)
    assert [r.method for r in rows] == ["float", "bnn", "xnor"]
    for r in rows:
        assert len(r.accuracies) == 2 and all(0.0 <= a <= 1.0 for a in r.accuracies)
        assert r.float_latency_ms[1] == rows[0].latency_ms[1] > 0
    assert rows[0].binary_params == 0 and rows[1].binary_params > 0
    assert rows[1].binary_params == rows[2].binary_params
    for method in ("float", "bnn", "xnor"):
        for seed in (0, 1):
            result = json.loads((tmp_path / method / f"seed{seed}" / "result.json").read_text())
            assert result["method"] == method and result["seed"] == seed
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["accuracies"] for r in saved] == [r.accuracies for r in rows]
    assert "| bnn |" in (tmp_path / "table.md").read_text()


def test_a_finished_comparison_is_not_trained_again(tmp_path, monkeypatch):
    first = compare(["bnn"], seeds=1, out_dir=str(tmp_path), log=quiet, **ARGS)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(importlib.import_module("onebit.train.fit"), "fit", no_training)
    again = compare(["bnn"], seeds=1, out_dir=str(tmp_path), log=quiet, **ARGS)
    assert [r.accuracies for r in again] == [r.accuracies for r in first]


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    compare(["bnn"], seeds=1, out_dir=str(tmp_path), log=quiet, **ARGS)
    (tmp_path / "bnn" / "seed0" / "result.json").unlink()  # as if killed after the last checkpoint
    lines = []
    rows = compare(["bnn"], seeds=1, out_dir=str(tmp_path), log=lines.append, **ARGS)
    assert rows[1].accuracies[0] == json.loads((tmp_path / "bnn" / "seed0" / "result.json").read_text())["test_acc"]


def test_markdown_table_reports_spread_and_speedup():
    row = MethodRow("bnn", [0.80, 0.90], 1000, 10, file_bytes=2048, latency_ms={1: 2.0}, float_latency_ms={1: 10.0})
    table = markdown_table([row], threads=(1,))
    assert "| bnn | 85.00 +- 7.07 | 2 | 1,000 | 10 | 2.0 | 2.000 | 5.00x |" in table
    assert row.speedup(2) is None


def test_bad_arguments_give_clear_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown budget"):
        compare(["bnn"], budget="huge", out_dir=str(tmp_path), log=quiet)
    with pytest.raises(ValueError, match="seeds"):
        compare(["bnn"], seeds=0, out_dir=str(tmp_path), log=quiet)
    with pytest.raises(SystemExit):
        cli.main(["compare", "--methods", "nonsense", "--out-dir", str(tmp_path)])
    assert "unknown methods ['nonsense']" in capsys.readouterr().err


def test_budgets_are_valid_recipes():
    from onebit.train.recipe import Recipe

    for name, budget in cmp.BUDGETS.items():
        recipe = Recipe().override(budget.overrides())
        assert recipe.epochs == budget.epochs and recipe.data.limit == budget.limit, name
