"""Precision and recall of the semantic cache's match, per threshold and model.

    .venv/bin/python bench/semantic_quality.py

``bench/semantic_pairs.tsv`` holds question pairs written for this purpose: ``same``
(a paraphrase: the stored answer is right for the asked question) and ``diff`` (a
near-miss that changes one fact: another company, year, unit, direction, a negation; a
hit would serve a wrong answer). For each threshold from 0.85 to 0.97 a pair is a hit
when its cosine similarity reaches it. Precision: of the hits, the share that were
``same`` (1 - the rate of wrong answers served). Recall: of the ``same`` pairs, the
share that hit (the savings). Models: ``local/all-MiniLM-L6-v2`` (numpy, this process)
and the mock's bag of words (llmrelay's offline test model) for contrast.
"""

from __future__ import annotations

from pathlib import Path

from llmrelay.cache.embedder import cosine
from llmrelay.cache.local_embedder import LocalEmbedder
from llmrelay.mock_answers.openai_embeddings import bag_of_words_vector

PAIRS = Path(__file__).with_name("semantic_pairs.tsv")
THRESHOLDS = [round(0.85 + 0.01 * i, 2) for i in range(13)]


def pairs() -> list[tuple[bool, str, str, str]]:
    rows = []
    for line in PAIRS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        label, stored, asked, why = line.split("\t")
        rows.append((label == "same", stored, asked, why))
    return rows


def table(name: str, scored: list[tuple[bool, float]]) -> None:
    positives = sum(1 for same, _ in scored if same)
    print(f"\n{name}\n")
    print("| threshold | hits | wrong hits | precision | recall |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for t in THRESHOLDS:
        tp = sum(1 for same, s in scored if same and s >= t)
        fp = sum(1 for same, s in scored if not same and s >= t)
        precision = f"{tp / (tp + fp):.3f}" if tp + fp else "-"
        print(f"| {t:.2f} | {tp + fp} | {fp} | {precision} | {tp / positives:.3f} |")


def main() -> None:
    rows = pairs()
    print(f"{len(rows)} pairs: {sum(r[0] for r in rows)} same, {sum(not r[0] for r in rows)} diff")
    local = LocalEmbedder()
    texts = [t for _, a, b, _ in rows for t in (a, b)]
    vectors = [local.embed_sync([t])[0] for t in texts]
    minilm = [
        (same, cosine(vectors[2 * i], vectors[2 * i + 1])) for i, (same, *_rest) in enumerate(rows)
    ]
    bow = [(same, cosine(bag_of_words_vector(a), bag_of_words_vector(b))) for same, a, b, _ in rows]
    table("local/all-MiniLM-L6-v2", minilm)
    table("mock/bag-of-words", bow)
    print("\nall-MiniLM-L6-v2: the near-misses that score highest, the paraphrases lowest\n")
    ranked = sorted(zip(minilm, rows, strict=True), key=lambda x: -x[0][1])
    for (_same, score), (_, a, b, why) in [r for r in ranked if not r[0][0]][:6]:
        print(f"  diff {score:.3f}  {a!r} / {b!r} ({why})")
    for (_same, score), (_, a, b, why) in [r for r in ranked if r[0][0]][-6:]:
        print(f"  same {score:.3f}  {a!r} / {b!r} ({why})")


if __name__ == "__main__":
    main()
