"""Representation engineering: reading vectors (LAT), control/steering, vector files (safetensors, llama.cpp GGUF control vectors)."""

__version__ = "0.1.0"
