import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny models: oversubscribed threads are far slower on shared cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
