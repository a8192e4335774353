import pytest
import torch


@pytest.fixture
def one_thread():
    """Train on one intra-op thread (small models gain nothing from two and suffer on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
