"""Quirky datasets and LoRA-finetuned quirky models; probes (LogR, DiffMean, LDA, CCS, CRC); transfer grids; mechanistic anomaly detection."""

__version__ = "0.1.0"
