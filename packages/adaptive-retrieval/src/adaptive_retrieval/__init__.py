"""PopQA-style evaluation; retrieve only when the model's parametric memory is unreliable."""

__version__ = "0.1.0"
