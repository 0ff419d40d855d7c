"""`serial_ops` runs small ops on one thread only on an oversubscribed machine, and always
restores the thread count."""

import torch
from sae_core import codes


def test_serial_ops_only_when_oversubscribed(monkeypatch):
    n = torch.get_num_threads()
    if n == 1:
        torch.set_num_threads(2)
    try:
        before = torch.get_num_threads()
        monkeypatch.setattr(codes, "oversubscribed", lambda: True)
        with codes.serial_ops():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == before
        monkeypatch.setattr(codes, "oversubscribed", lambda: False)
        with codes.serial_ops():
            assert torch.get_num_threads() == before
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(n)


def test_oversubscribed_reads_the_load_average(monkeypatch):
    monkeypatch.setattr(codes.os, "getloadavg", lambda: (99.0, 0.0, 0.0))
    assert codes.oversubscribed()
    monkeypatch.setattr(codes.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert not codes.oversubscribed()
