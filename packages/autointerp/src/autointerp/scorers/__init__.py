"""Scorers (registry by name): detection, fuzzing, embedding, surprisal, simulation, intruder,
example_embedding."""

from autointerp.scorers.base import SCORERS, Scorer, get_scorer
from autointerp.scorers.detection import DetectionScorer
from autointerp.scorers.embedding import EmbeddingScorer
from autointerp.scorers.example_embedding import ExampleEmbeddingScorer
from autointerp.scorers.fuzzing import FuzzingScorer
from autointerp.scorers.intervention import InterventionScorer, TransformersJudge
from autointerp.scorers.intruder import IntruderScorer
from autointerp.scorers.simulation import SimulationScorer
from autointerp.scorers.surprisal import SurprisalScorer, TransformersLogprob

__all__ = [
    "InterventionScorer",
    "TransformersJudge",
    "SCORERS",
    "DetectionScorer",
    "EmbeddingScorer",
    "ExampleEmbeddingScorer",
    "FuzzingScorer",
    "IntruderScorer",
    "Scorer",
    "SimulationScorer",
    "SurprisalScorer",
    "TransformersLogprob",
    "get_scorer",
]
