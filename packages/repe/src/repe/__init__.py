"""Representation engineering: reading vectors (LAT), control/steering, vector files
(safetensors, llama.cpp GGUF control vectors) and an evaluation harness.

Note: PyPI's ``repe`` (andyzoujm) uses the same import name; do not install both.
"""

from ._version import __version__
from .control import (
    Condition,
    SteerSpec,
    directional_ablation,
    gaussian,
    multisteer,
    parse_rule,
    steer,
    triangle,
)
from .data import (
    ChatFormat,
    ContrastPair,
    Stimulus,
    load_pairs_jsonl,
    pairs_from_lists,
    save_pairs_jsonl,
    sentiment_pairs,
    split_by_group,
)
from .errors import (
    LayerError,
    NonFiniteActivationError,
    PairDataError,
    RepeError,
    UnknownNameError,
    VectorFileError,
    VectorMismatchError,
)
from .finders import FINDERS, fit_direction
from .io import (
    export_gguf,
    from_repeng,
    from_steering_vectors,
    from_svec,
    import_gguf,
    load_vector,
    save_vector,
)
from .metrics import LayerReport, auroc
from .reader import RepReader, evaluate_vector, fit_reading_vector
from .vector import ReadingVector

__all__ = [
    "FINDERS",
    "ChatFormat",
    "Condition",
    "ContrastPair",
    "LayerError",
    "LayerReport",
    "NonFiniteActivationError",
    "PairDataError",
    "ReadingVector",
    "RepReader",
    "RepeError",
    "SteerSpec",
    "Stimulus",
    "UnknownNameError",
    "VectorFileError",
    "VectorMismatchError",
    "__version__",
    "auroc",
    "directional_ablation",
    "evaluate_vector",
    "export_gguf",
    "fit_direction",
    "fit_reading_vector",
    "from_repeng",
    "from_steering_vectors",
    "from_svec",
    "gaussian",
    "import_gguf",
    "load_pairs_jsonl",
    "load_vector",
    "multisteer",
    "pairs_from_lists",
    "parse_rule",
    "save_pairs_jsonl",
    "save_vector",
    "sentiment_pairs",
    "split_by_group",
    "steer",
    "triangle",
]
