"""Streaming sparse latent cache (writer, memory-mapped reader, online top-N/reservoirs/statistics)."""

from sae_core.cache.reader import LatentCache, Window
from sae_core.cache.rows import RowSet, build_rows, tokenize_documents
from sae_core.cache.sketch import MinHashSketch, jaccard_from_bins
from sae_core.cache.stats import LatentStats
from sae_core.cache.topn import SegmentedTopN, window_hash
from sae_core.cache.writer import CacheConfig, cache_latents

__all__ = [
    "CacheConfig",
    "LatentCache",
    "LatentStats",
    "MinHashSketch",
    "RowSet",
    "SegmentedTopN",
    "Window",
    "build_rows",
    "cache_latents",
    "jaccard_from_bins",
    "tokenize_documents",
    "window_hash",
]
