"""Explain SAE latents with an LLM and score the explanations (detection, fuzzing, embedding, surprisal, intervention, simulation); compare SAEs by their explanations."""

__version__ = "0.1.0"
