"""A dataset over a ``root/<class>/<image>`` tree (the ImageNet train/val layout), read with Pillow.

The images are the user's own files; nothing is downloaded. Classes are the sorted names of the
sub-directories of ``root`` (hidden ones skipped); images are found recursively below each.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["IMG_EXTENSIONS", "ImageFolder", "load_image"]

IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("onebit.data.ImageFolder needs Pillow to decode images: pip install pillow") from exc
    return Image


def load_image(path: str | os.PathLike) -> torch.Tensor:
    """One image file as an RGB float32 (3, H, W) tensor in [0, 1]."""
    image_mod = _pil()
    with image_mod.open(path) as image:
        array = np.array(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3), a writable copy
    return torch.from_numpy(array).permute(2, 0, 1).to(torch.float32).div_(255.0)


class ImageFolder(Dataset):
    """Images under ``root/<class>/...`` as ``(CHW float32 tensor in [0, 1], class index)``.

    ``transform`` is applied to the image tensor (see :mod:`onebit.data.transforms`); images of
    different sizes need one (e.g. ``RandomResizedCrop``) before they can be batched.
    ``extensions`` are matched case-insensitively. Attributes: ``classes`` (sorted),
    ``class_to_idx``, ``samples`` (list of (path, index)) and ``targets``. An empty root, or a
    class folder without images, raises ``FileNotFoundError``.
    """

    def __init__(self, root: str | os.PathLike, *, transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 extensions: Sequence[str] = IMG_EXTENSIONS) -> None:
        self.root = Path(root).expanduser()
        self.transform = transform
        self.extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        if not self.extensions:
            raise ValueError("ImageFolder: extensions must not be empty")
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory "
                                    "(expected root/<class>/<image> with one folder per class)")
        self.classes = sorted(e.name for e in os.scandir(self.root) if e.is_dir() and not e.name.startswith("."))
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: {self.root} has no class folders "
                                    "(expected root/<class>/<image> with one folder per class)")
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        empty = []
        for name in self.classes:
            files = self._images(self.root / name)
            if not files:
                empty.append(name)
            self.samples.extend((f, self.class_to_idx[name]) for f in files)
        if empty:
            shown = empty if len(empty) <= 10 else empty[:10] + [f"... ({len(empty)} in all)"]
            raise FileNotFoundError(f"ImageFolder: no images with extensions {list(self.extensions)} in "
                                    f"class folder(s) {shown} under {self.root}")
        self.targets = [target for _, target in self.samples]

    def _images(self, directory: Path) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                         if not f.startswith(".") and f.lower().endswith(self.extensions))
        return found

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, target = self.samples[index]
        try:
            image = load_image(path)
        except OSError as exc:
            raise OSError(f"ImageFolder: cannot read image {path}: {exc}") from exc
        if self.transform is not None:
            image = self.transform(image)
        return image, target

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, classes={len(self.classes)}, samples={len(self)})"
