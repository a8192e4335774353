"""ImageFolder on a few small images written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

Image = pytest.importorskip("PIL.Image")

from onebit.data import ImageFolder, get  # noqa: E402
from onebit.data.transforms import Resize  # noqa: E402


def save(path: Path, array: np.ndarray) -> None:
    """(H, W, 3) uint8 -> RGB, (H, W) -> grayscale."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture
def tree(tmp_path) -> dict[str, np.ndarray]:
    """root/train/{cat,dog}/...: RGB and grayscale PNGs, a BMP, and files that must be skipped."""
    rng = np.random.default_rng(0)
    arrays = {
        "dog/b.png": rng.integers(0, 256, (4, 6, 3), dtype=np.uint8),
        "dog/a.PNG": rng.integers(0, 256, (5, 5, 3), dtype=np.uint8),
        "cat/x.bmp": rng.integers(0, 256, (3, 7, 3), dtype=np.uint8),
        "cat/sub/gray.png": rng.integers(0, 256, (6, 4), dtype=np.uint8),
    }
    for name, array in arrays.items():
        save(tmp_path / "train" / name, array)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    save(tmp_path / "train" / ".hidden" / "h.png", arrays["dog/b.png"])
    return arrays


def test_classes_samples_and_pixels(tmp_path, tree):
    ds = ImageFolder(tmp_path / "train")
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    rel = [(Path(p).relative_to(tmp_path / "train").as_posix(), t) for p, t in ds.samples]
    assert rel == [("cat/x.bmp", 0), ("cat/sub/gray.png", 0), ("dog/a.PNG", 1), ("dog/b.png", 1)]
    assert ds.targets == [0, 0, 1, 1] and len(ds) == 4
    for i, (name, _) in enumerate(rel):
        image, target = ds[i]
        expected = tree[name] if tree[name].ndim == 3 else np.repeat(tree[name][..., None], 3, axis=2)
        assert image.dtype == torch.float32 and target == ds.targets[i]
        torch.testing.assert_close(image, torch.from_numpy(expected).permute(2, 0, 1).float() / 255)


def test_transform_and_loader(tmp_path, tree):
    ds = ImageFolder(tmp_path / "train", transform=Resize((8, 8)), extensions=("png",))
    assert len(ds) == 3  # the BMP is not in extensions
    images, targets = next(iter(DataLoader(ds, batch_size=3)))
    assert images.shape == (3, 3, 8, 8) and targets.tolist() == [0, 1, 1]


def test_registry_uses_root_slash_split(tmp_path, tree):
    assert len(get("imagefolder", "train", root=tmp_path)) == 4
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        get("imagefolder", "val", root=tmp_path)
    with pytest.raises(ValueError, match="needs root="):
        get("imagefolder", "train")


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no class folders"):
        ImageFolder(tmp_path / "empty")
    save(tmp_path / "r" / "a" / "1.png", np.zeros((2, 2, 3), np.uint8))
    (tmp_path / "r" / "b").mkdir()
    (tmp_path / "r" / "b" / "readme.txt").write_text("")
    with pytest.raises(FileNotFoundError, match=r"no images .* class folder\(s\) \['b'\]"):
        ImageFolder(tmp_path / "r")
    (tmp_path / "r" / "b" / "bad.png").write_bytes(b"not a png")
    ds = ImageFolder(tmp_path / "r")
    with pytest.raises(OSError, match="cannot read image .*bad.png"):
        ds[1]
