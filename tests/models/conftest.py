"""Fixtures shared by the model-zoo tests."""

import pytest


@pytest.fixture(autouse=True)
def one_thread(torch_one_thread):
    """Every zoo test runs with one torch thread (tests/conftest.py)."""
    yield
