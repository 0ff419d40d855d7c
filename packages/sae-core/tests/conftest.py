import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models gain nothing from threads, and thread sync is slow on a shared 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_llama():
    """One tiny random Llama (d=64, 2 layers) + tokenizer for all sae-core tests."""
    from lm_kit.tiny import tiny_model, tiny_tokenizer

    n = torch.get_num_threads()
    torch.set_num_threads(1)  # random init crawls with 2 threads on a busy box
    try:
        return tiny_model("llama", d=64, layers=2, vocab=512), tiny_tokenizer()
    finally:
        torch.set_num_threads(n)
