"""Small-scale reproductions of each paper's headline result, with figures and an HTML report."""

__version__ = "0.1.0"
