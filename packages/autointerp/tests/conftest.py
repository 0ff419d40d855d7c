from __future__ import annotations

import pytest
from autointerp.config import ExampleConfig
from autointerp.examples import ExampleBuilder
from autointerp.synthetic import make_planted_corpus
from autointerp.testing import OracleEmbedder


@pytest.fixture(scope="session")
def planted():
    return make_planted_corpus()


@pytest.fixture(scope="session")
def builder(planted):
    return ExampleBuilder(planted.source, ExampleConfig(), OracleEmbedder())


@pytest.fixture(scope="session")
def examples(builder, planted):
    return {p.index: builder.build(p.index) for p in planted.latents}
