"""Fixtures shared by the training tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one intra-op thread: the tiny models here gain nothing from more, and on a
    busy 2-core machine OpenMP threads competing with other processes make them ~10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
