"""Sparse autoencoders: load/save every common format, hook any HF causal LM, stream sparse latent activations to disk, train small TopK SAEs, neuron baselines."""

__version__ = "0.1.0"
