"""The `onebit` command line: train writes a run directory, eval reads it back, summary, argparse errors,
data-set errors as one line."""

import gzip
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import onebit
from onebit.cli import main
from onebit.train._util import optional_import
from onebit.train.recipe import Recipe

TINY = """
model:
  name: small_cnn
  method: {input_quantizer: ste_sign, weight_quantizer: ste_sign, pad_value: 1.0}
  kwargs: {width: 8}
data: {name: synthetic, batch_size: 32}
optim: {lr: 1.0e-2}
epochs: 1
log: {every: 0, plot: false}
"""


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def tiny_recipe(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_train_writes_a_run_dir_and_eval_reads_it_back(tmp_path, tiny_recipe, capsys):
    run = tmp_path / "run"
    assert main(["train", "--recipe", str(tiny_recipe), "--set", f"out_dir={run}", "optim.lr=5e-3"]) == 0
    out = capsys.readouterr().out
    assert "# resolved recipe" in out and "lr: 0.005" in out
    saved = Recipe.from_yaml(run / "recipe.yaml")
    assert saved.optim.lr == 5e-3 and saved.out_dir == str(run)
    assert {"last.pt", "best.pt", "metrics.csv", "recipe.yaml"} <= {p.name for p in run.iterdir()}
    best_acc = onebit.load_checkpoint(run / "best.pt")["extra"]["metrics"]["val_acc"]
    assert f"best validation accuracy {100 * best_acc:.2f}%" in out

    assert main(["eval", str(run / "best.pt")]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"accuracy {100 * best_acc:.2f}%\s+loss \d", out)
    assert "flip ratio" in out
    assert main(["eval", str(run / "last.pt"), "--set", "data.val_limit=10"]) == 0
    assert "(10 samples, synthetic:test; epoch 1)" in capsys.readouterr().out


def test_train_resume(tmp_path, tiny_recipe, capsys):
    run = tmp_path / "run"
    main(["train", "--recipe", str(tiny_recipe), "--set", f"out_dir={run}"])
    main(["train", "--recipe", str(tiny_recipe), "--set", f"out_dir={run}", "epochs=2", "--resume"])
    assert "resumed from" in capsys.readouterr().out
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + 2


def test_summary_of_a_builtin_model(capsys):
    assert main(["summary", "small_cnn", "--image-size", "8"]) == 0
    assert "Total params" in capsys.readouterr().out


def _has(module: str) -> bool:
    mod = optional_import(module)
    return mod is not None and hasattr(mod, "get")


@pytest.mark.skipif(not (_has("onebit.methods") and _has("onebit.data")), reason="needs onebit.methods and onebit.data")
def test_shipped_digits_recipe(tmp_path, capsys):
    assert main(["train", "--recipe", "digits_bnn", "--set", f"out_dir={tmp_path}", "epochs=1", "log.plot=false"]) == 0
    assert main(["summary", "small_cnn", "--method", "bnn", "--image-size", "8"]) == 0
    assert "1-bit" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    ([], "the following arguments are required: COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train"], "the following arguments are required: --recipe"),
    (["train", "--recipe", "nope"], "unknown recipe 'nope'; shipped recipes"),
    (["train", "--recipe", "{tiny}", "--set", "optim.lrr=1"], "did you mean 'optim.lr'"),
    (["train", "--recipe", "{tiny}", "--set", "optim.lr=fast"], "optim.lr: expected float"),
    (["train", "--recipe", "{tiny}", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
    (["eval", "missing.pt"], "checkpoint 'missing.pt' does not exist"),
    (["summary", "no_such_model"], "unknown model 'no_such_model'"),
])
def test_errors_are_argparse_errors(argv, message, tiny_recipe, capsys):
    argv = [a.replace("{tiny}", str(tiny_recipe)) for a in argv]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- data-set errors
# Run as a program (main() with argv None, as the `onebit` script does), a missing or damaged data set is
# one line on stderr and exit status 1, not a traceback; called with an explicit argv, the loader's
# exception propagates (tests/train/test_bad_inputs.py).

FASHION = """
model: {name: small_cnn, method: {input_quantizer: ste_sign, weight_quantizer: ste_sign}, kwargs: {width: 8}}
data: {name: fashion_mnist, batch_size: 32}
epochs: 1
log: {every: 0, plot: false, tensorboard: false}
"""


def _fashion_files(root, damaged: str | None = None):
    """Tiny valid Fashion-MNIST idx.gz files for both splits; ``damaged``: that file cut in half."""
    from onebit.data.fashion_mnist import _FILES

    def idx(array):
        return bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()

    root.mkdir()
    for images, labels in _FILES.values():
        (root / f"{images}.gz").write_bytes(gzip.compress(idx(np.zeros((4, 28, 28), np.uint8))))
        (root / f"{labels}.gz").write_bytes(gzip.compress(idx(np.arange(4, dtype=np.uint8))))
    if damaged is not None:
        raw = (root / damaged).read_bytes()
        (root / damaged).write_bytes(raw[: len(raw) // 2])
    return root


def run_as_program(monkeypatch, *argv) -> int:
    monkeypatch.setattr("sys.argv", ["onebit", *argv])
    return main()


@pytest.mark.parametrize("case, messages", [
    ("missing", ["onebit train: error: Fashion-MNIST directory", "does not exist",
                 "apt-get install dataset-fashion-mnist"]),
    ("corrupt", ["onebit train: error: ", "train-labels-idx1-ubyte.gz: corrupt or truncated gzip file",
                 "apt-get install --reinstall dataset-fashion-mnist"]),
])
def test_train_with_a_missing_or_corrupt_data_set_prints_the_message(case, messages, tmp_path, monkeypatch, capsys):
    root = tmp_path / "nowhere" if case == "missing" else _fashion_files(tmp_path / "fm", "train-labels-idx1-ubyte.gz")
    recipe = tmp_path / "fashion.yaml"
    recipe.write_text(FASHION)
    status = run_as_program(monkeypatch, "train", "--recipe", str(recipe), "--set", f"data.root={root}",
                            f"out_dir={tmp_path / 'run'}")
    err = capsys.readouterr().err
    assert status == 1
    assert all(m in err for m in messages), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "last.pt").exists()


def test_eval_with_a_missing_data_set_prints_the_message(tmp_path, tiny_recipe, monkeypatch, capsys):
    run = tmp_path / "run"
    assert main(["train", "--recipe", str(tiny_recipe), "--set", f"out_dir={run}"]) == 0
    capsys.readouterr()
    status = run_as_program(monkeypatch, "eval", str(run / "best.pt"), "--set", "data.name=fashion_mnist",
                            f"data.root={tmp_path / 'nowhere'}")
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("onebit eval: error: Fashion-MNIST directory"), err
    assert "apt-get install dataset-fashion-mnist" in err


def test_errors_during_training_keep_their_traceback(tiny_recipe, tmp_path, monkeypatch):
    # only errors raised while the data set is built become a one-line message
    import onebit.train.run as run_module

    def broken_fit(*args, **kwargs):
        raise ValueError("a bug in the training loop")

    monkeypatch.setattr(run_module, "fit", broken_fit)
    with pytest.raises(ValueError, match="a bug in the training loop"):
        run_as_program(monkeypatch, "train", "--recipe", str(tiny_recipe), "--set", f"out_dir={tmp_path / 'run'}")


def test_the_onebit_program_shows_no_traceback_for_a_missing_data_set(tmp_path):
    recipe = tmp_path / "fashion.yaml"
    recipe.write_text(FASHION)
    out = subprocess.run([sys.executable, "-m", "onebit.cli", "train", "--recipe", str(recipe), "--set",
                          f"data.root={tmp_path / 'nowhere'}", f"out_dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("onebit train: error: Fashion-MNIST directory") and "apt-get install" in out.stderr


def test_the_onebit_program_reports_a_damaged_checkpoint_on_resume(tmp_path):
    """--resume from a truncated last.pt: one line naming the file, exit 1, no traceback."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"PK\x03\x04 truncated")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text("model: {name: small_cnn, kwargs: {width: 4}}\ndata: {name: synthetic}\nepochs: 1\n"
                      f"log: {{every: 0, plot: false, tensorboard: false}}\nout_dir: {run}\n")
    out = subprocess.run([sys.executable, "-m", "onebit.cli", "train", "--recipe", str(recipe), "--resume"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("onebit train: error:") and "last.pt" in out.stderr
