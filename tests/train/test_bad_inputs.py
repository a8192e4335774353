"""Bad inputs to `onebit train` fail early with a message that says what is wrong and what to do:
recipes with unknown keys, wrong types or broken YAML; missing or damaged data set files."""

import gzip

import numpy as np
import pytest

from onebit.cli import main
from onebit.data.fashion_mnist import _FILES as FASHION_FILES
from onebit.train.recipe import Recipe


def train(tmp_path, recipe_text, *overrides):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe_text)
    return main(["train", "--recipe", str(path), "--set", f"out_dir={tmp_path / 'run'}", *overrides])


@pytest.mark.parametrize("text, message", [
    ("optim: {lrr: 0.1}\n", "unknown optim key 'lrr'; did you mean 'lr'?"),
    ("epochz: 3\n", "unknown recipe key 'epochz'; did you mean 'epochs'?"),
    ("data: {name: synthetic, batch_size: many}\n", "data.batch_size: expected int, got 'many'"),
    ("model: 3\n", "model: expected a mapping, got 3"),
    ("- 1\n- 2\n", "recipe: expected a mapping"),
    ("optim: {lr: [1, 2\n", "recipe is not valid YAML"),
    ("epochs: 3\n  bad: 2\n", "recipe is not valid YAML"),
])
def test_bad_recipe_files_are_argparse_errors(tmp_path, capsys, text, message):
    with pytest.raises(SystemExit) as info:
        train(tmp_path, text)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing is written before the recipe is valid


def test_recipe_file_that_is_not_text(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"r\.yaml: "):
        Recipe.from_yaml(path)


FASHION = """
model: {name: small_cnn, method: {input_quantizer: ste_sign, weight_quantizer: ste_sign}, kwargs: {width: 8}}
data: {name: fashion_mnist, batch_size: 32}
epochs: 1
log: {every: 0, plot: false, tensorboard: false}
"""


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEBIT_FASHION_MNIST", raising=False)
    with pytest.raises(FileNotFoundError) as info:
        train(tmp_path, FASHION, f"data.root={tmp_path / 'nowhere'}")
    text = str(info.value)
    assert "does not exist" in text and "apt-get install dataset-fashion-mnist" in text
    assert "ONEBIT_FASHION_MNIST" in text


def write_split(root, n=4):
    """Small valid Fashion-MNIST idx.gz files for both splits."""
    def idx(array):
        return bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape) + array.tobytes()

    for split, (images, labels) in FASHION_FILES.items():
        (root / f"{images}.gz").write_bytes(gzip.compress(idx(np.zeros((n, 28, 28), np.uint8))))
        (root / f"{labels}.gz").write_bytes(gzip.compress(idx(np.arange(n, dtype=np.uint8) % 10)))


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) // 2], "corrupt or truncated gzip file"),
    (lambda raw: gzip.compress(gzip.decompress(raw)[:-5]), "truncated: shape"),
    (lambda raw: b"", "too short for an idx header"),
])
def test_damaged_fashion_mnist_file_is_named_with_a_repair_hint(tmp_path, damage, message):
    root = tmp_path / "fmnist"
    root.mkdir()
    write_split(root)
    target = root / "train-images-idx3-ubyte.gz"
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(ValueError) as info:
        train(tmp_path, FASHION, f"data.root={root}")
    text = str(info.value)
    assert message in text and "train-images-idx3-ubyte" in text
    assert "apt-get install --reinstall dataset-fashion-mnist" in text


def test_missing_single_fashion_mnist_file(tmp_path):
    root = tmp_path / "fmnist"
    root.mkdir()
    write_split(root)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.*apt-get install dataset-fashion-mnist"):
        train(tmp_path, FASHION, f"data.root={root}")
