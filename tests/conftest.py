"""Fixtures shared across the test tree."""

import pytest
import torch


@pytest.fixture
def torch_one_thread():
    """One torch intra-op thread for the test: tiny models gain nothing from more, and lose ~10x on a busy
    2-core machine. Modules opt in with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
