"""Weak vs gold label quantity/quality trade-off; training methods; cost Pareto frontier; budget planner."""

__version__ = "0.1.0"
