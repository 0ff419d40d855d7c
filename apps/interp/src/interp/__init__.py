"""SAE caching, explanation and scoring app."""

__version__ = "0.1.0"
