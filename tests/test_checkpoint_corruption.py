"""load_checkpoint on truncated, corrupt, hostile and foreign files: always a CheckpointError that
names the file, never a raw zip/pickle traceback, and never code execution (weights_only)."""

import os
import random

import pytest
import torch
from torch import nn

import onebit
from onebit.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "good.pt"
    model = nn.Sequential(nn.Linear(16, 32), nn.Linear(32, 4))
    onebit.binarize_(model, onebit.BinarizeConfig.from_dict({"input_quantizer": "ste_sign",
                                                             "weight_quantizer": "ste_sign"}))
    save_checkpoint(path, model, extra={"epoch": 1, "history": [{"loss": 0.5}]})
    return path.read_bytes()


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_good_file_loads(tmp_path, good):
    ckpt = load_checkpoint(write(tmp_path, "a.pt", good))
    assert ckpt["extra"]["epoch"] == 1 and ckpt["config"] is not None


@pytest.mark.parametrize("cut", [0, 1, 10, 100, 0.25, 0.5, 0.9, -22, -1])
def test_truncated_file(tmp_path, good, cut):
    n = int(len(good) * cut) if isinstance(cut, float) else cut % len(good) if cut < 0 else cut
    path = write(tmp_path, "cut.pt", good[:n])
    with pytest.raises(CheckpointError, match=r"cut\.pt") as info:
        load_checkpoint(path)
    assert "truncated or corrupt" in str(info.value) or "cannot be loaded safely" in str(info.value)


@pytest.mark.parametrize("kind", ["random", "text", "pickle_header", "zeros"])
def test_garbage_file(tmp_path, kind):
    rng = random.Random(kind)
    data = {"random": rng.randbytes(4096), "text": b"hello, this is not a checkpoint\n" * 20,
            "pickle_header": b"\x80\x02\x95" + rng.randbytes(200), "zeros": bytes(1000)}[kind]
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(write(tmp_path, "garbage.pt", data))


def test_random_byte_damage_never_escapes(tmp_path, good):
    rng = random.Random(0)
    for i in range(60):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        path = write(tmp_path, f"flip{i}.pt", bytes(data))
        try:
            load_checkpoint(path)  # damage inside tensor bytes still loads: checkpoints carry no checksum
        except CheckpointError:
            pass


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_objects_are_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "onebit-checkpoint-1", "state_dict": {}, "onebit_config": None, "extra": {},
                "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="cannot be loaded safely.*weights_only=False"):
        load_checkpoint(path)


@pytest.mark.parametrize("payload, message", [
    ({"format": "something-else"}, "not an onebit checkpoint"),
    ([1, 2, 3], "not an onebit checkpoint"),
    ({"format": "onebit-checkpoint-1", "state_dict": [1], "onebit_config": None, "extra": {}}, "state_dict"),
    ({"format": "onebit-checkpoint-1", "state_dict": {"w": 1}, "onebit_config": None, "extra": {}}, "state_dict"),
    ({"format": "onebit-checkpoint-1", "state_dict": {}, "onebit_config": 3, "extra": {}}, "onebit_config"),
    ({"format": "onebit-checkpoint-1", "state_dict": {}, "onebit_config": None}, "extra"),
    ({"format": "onebit-checkpoint-1", "state_dict": {}, "onebit_config": "{not json", "extra": {}},
     "binarize config cannot be read"),
])
def test_foreign_or_malformed_contents(tmp_path, payload, message):
    path = tmp_path / "f.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_missing_file_and_directory_keep_their_os_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(IsADirectoryError):
        load_checkpoint(tmp_path)


def test_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)  # callers catching ValueError keep working
