"""Vector files: safetensors + metadata, llama.cpp GGUF, and importers."""

from .gguf_io import export_gguf, import_gguf
from .importers import from_repeng, from_steering_vectors, from_svec
from .vector_file import check_compatible, load_vector, read_metadata, save_vector

__all__ = [
    "check_compatible",
    "export_gguf",
    "from_repeng",
    "from_steering_vectors",
    "from_svec",
    "import_gguf",
    "load_vector",
    "read_metadata",
    "save_vector",
]
