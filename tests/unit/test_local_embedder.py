"""The local all-MiniLM-L6-v2 embeddings: the real model's weights, our numpy forward pass.

The reference values are sentence-transformers' own, published in its usage guide
(https://sbert.net/docs/sentence_transformer/usage/usage.html): "The weather is lovely
today." / "It's so sunny outside!" / "He drove to the stadium." give the similarities
0.6660, 0.1046 and 0.1411 with this model. Matching them to four places checks the
tokeniser, every layer, the pooling and the normalisation at once.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys

import pytest

from llmrelay.cache.embedder import EmbeddingError, cosine
from llmrelay.cache.local_embedder import DIMENSIONS, MAX_TOKENS, LocalEmbedder, model_zip


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


def _sim(local: LocalEmbedder, a: str, b: str) -> float:
    va, vb = local.embed_sync([a, b])
    return cosine(va, vb)


def test_matches_the_similarities_sentence_transformers_publishes(local: LocalEmbedder) -> None:
    weather, sunny, stadium = local.embed_sync(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    assert cosine(weather, sunny) == pytest.approx(0.6660, abs=5e-4)
    assert cosine(weather, stadium) == pytest.approx(0.1046, abs=5e-4)
    assert cosine(sunny, stadium) == pytest.approx(0.1411, abs=5e-4)


def test_a_paraphrase_scores_far_above_a_near_miss(local: LocalEmbedder) -> None:
    asked = "How old is the CEO of Apple?"
    paraphrase = _sim(local, asked, "What is the age of Apple's chief executive?")
    other_company = _sim(local, asked, "How old is the CEO of Microsoft?")
    assert paraphrase > 0.88
    assert other_company < 0.82
    assert paraphrase - other_company > 0.1


async def test_unit_vectors_384_wide_deterministic_and_batch_independent(
    local: LocalEmbedder,
) -> None:
    text = "How old is the CEO of Apple?"
    first = await local.embed(text)
    again = await local.embed(text)
    assert len(first) == DIMENSIONS
    assert math.fsum(v * v for v in first) == pytest.approx(1.0, abs=1e-5)
    assert first == again
    # In a padded batch beside a longer text the mask hides the pads: the same vector.
    batched = local.embed_sync([text, "a much longer question " * 10])[0]
    assert max(abs(a - b) for a, b in zip(first, batched, strict=True)) < 1e-5


def test_long_text_is_truncated_to_the_models_length(local: LocalEmbedder) -> None:
    before = local.tokens
    vector = local.embed_sync(["word " * 1000])[0]
    assert local.tokens - before == MAX_TOKENS
    assert len(vector) == DIMENSIONS


def test_finding_the_model_does_not_import_its_package() -> None:
    # The package prints on import and drags in its declared dependencies' imports.
    code = (
        "import sys; from llmrelay.cache.local_embedder import model_zip; "
        "print(model_zip().name, 'all_minilm_l6_v2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "model.zip False", out.stderr
    assert model_zip().stat().st_size > 80_000_000


def test_a_missing_extra_is_an_error_naming_it() -> None:
    # A Python whose path hides site-packages' model package: the error names the extra.
    code = (
        "import sys, importlib.machinery\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'all_minilm_l6_v2': raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from llmrelay.cache.local_embedder import LocalEmbedder\n"
        "import asyncio\n"
        "try:\n"
        "    asyncio.run(LocalEmbedder().embed('x'))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.startswith("EmbeddingError"), out.stdout + out.stderr
    assert "llmrelay[local-embeddings]" in out.stdout
    assert EmbeddingError.__name__ in out.stdout


async def test_concurrent_first_calls_share_one_load() -> None:
    embedder = LocalEmbedder()
    vectors = await asyncio.gather(*(embedder.embed("same question") for _ in range(3)))
    assert vectors[0] == vectors[1] == vectors[2]
    assert embedder._model is embedder.load()
