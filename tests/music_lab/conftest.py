"""Music lab tests: one torch thread (the shared 2-core machine is oversubscribed; with two threads the tiny
recurrent models run 50x slower there)."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
