"""Distributional simplicity bias: maximum-entropy samplers matching low-order moments, n-gram samplers, optimal-transport editing, training-dynamics evaluation."""

__version__ = "0.1.0"
