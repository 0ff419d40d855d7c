"""Exports of a run directory (Neuronpedia JSON; tables are written by ``autointerp.report``)."""

from autointerp.export.neuronpedia import (
    NEURONPEDIA_VERSION,
    export_neuronpedia,
    neuronpedia_record,
)

__all__ = ["NEURONPEDIA_VERSION", "export_neuronpedia", "neuronpedia_record"]
