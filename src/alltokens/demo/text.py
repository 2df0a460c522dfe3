"""The demo's text section: text becomes tokens, a small LM, and real sentence embeddings.

Builds the standard-library docstring corpus, trains a BPE tokenizer and a small LM on it, samples at
several temperatures, shows how text becomes tokens, and runs the real MiniLM sentence encoder for
similarity and word analogies.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alltokens.report import Report

PROMPTS = ["Return the number of", "This module provides", "If the file"]
TEMPERATURES = [0.0, 0.7, 1.0]
SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell sharply today.",
    "Shares dropped at the close of trading.",
    "A cat sleeps on the sofa.",
]
DOCUMENTS = [
    "Open a file and return a stream.",
    "Sort the list in place.",
    "Return the square root of x.",
    "Create a new thread of execution.",
    "Parse a JSON document into Python objects.",
    "Send an HTTP request to a server.",
    "Compress data with the zlib algorithm.",
    "Join path components intelligently.",
]
SEARCH_QUERY = "read the contents of a file"


def run(report: Report, out: Path, quick: bool, steps: int | None, log: Callable[[str], None]) -> None:
    """Train and sample the LM under `out`, and add the text sections to `report`."""
    import alltokens
    from alltokens.data.pydocs import write_pydocs_corpus
    from alltokens.pipelines.embedding import analogy, minilm_path
    from alltokens.report import completion_html, token_html
    from alltokens.tokenizers import train_bpe
    from alltokens.train.recipes.lm import train_lm

    report.text(
        "A language model trained from scratch on this machine's Python standard-library docstrings, "
        "its tokenizer, and the real all-MiniLM-L6-v2 sentence encoder."
    )

    log("text 1/5: corpus: the standard library's docstrings")
    corpus = out / "pydocs.txt"
    n_bytes = write_pydocs_corpus(corpus)
    log(f"    {n_bytes / 1e6:.2f} MB -> {corpus}")

    log("text 2/5: tokenizer: byte-level BPE")
    vocab_size = 2048 if quick else 4096
    tokenizer = train_bpe([corpus], vocab_size=vocab_size)
    tokenizer.save(out / "tokenizer")
    example = "Return the number of items in the 🐍 container, or raise ValueError."
    pieces = tokenizer.pieces(example)
    log(f"    {tokenizer.vocab_size} tokens; {len(example)} characters -> {len(pieces)} tokens")

    log("text 3/5: language model: training (progress below)")
    run_dir = train_lm(
        data=[corpus],
        tokenizer=out / "tokenizer",
        out=out / "lm",
        preset="tiny",
        steps=steps or (150 if quick else 600),
        progress=True,
    )
    lm = alltokens.load(run_dir)

    log("text 4/5: samples")
    samples = []
    for i, prompt in enumerate(PROMPTS):
        for temperature in TEMPERATURES:
            text = lm.generate(prompt, max_new_tokens=40, temperature=temperature, top_p=0.95, seed=i)
            samples.append((temperature, completion_html(prompt, text)))
            log(f"    T={temperature:.1f} {prompt!r} -> {text!r}")

    log("text 5/5: sentence embeddings: all-MiniLM-L6-v2")
    encoder = alltokens.load(minilm_path())
    vectors = encoder.embed(SENTENCES)
    similarity = (vectors @ vectors.T).tolist()
    doc_vectors = encoder.embed(DOCUMENTS)
    scores = (doc_vectors @ encoder.embed([SEARCH_QUERY]).T).squeeze(1)
    ranked = sorted(zip(scores.tolist(), DOCUMENTS), reverse=True)
    words = analogy(encoder, "king", "man", "woman", top=5)
    log(f"    king - man + woman = {words[0][1]} ({words[0][0]:.3f})")

    report.heading("Text becomes tokens")
    report.text(
        f"Byte-level BPE with {tokenizer.vocab_size} tokens, trained on {n_bytes / 1e6:.2f} MB of docstrings."
    )
    report.raw(token_html(pieces, tokenizer.special_ids))
    report.text(
        f"{len(example)} characters, {len(example.encode())} bytes, {len(pieces)} tokens.", muted=True
    )

    report.heading("Training the language model")
    cfg = lm.cfg
    n_params = sum(p.numel() for p in lm.model.parameters())
    report.text(
        f"{n_params / 1e6:.2f}M parameters: {cfg.num_hidden_layers} layers, width {cfg.hidden_size}, "
        f"{cfg.num_attention_heads} heads, context {cfg.max_position_embeddings}."
    )
    if (run_dir / "loss.png").exists():
        report.image(run_dir / "loss.png", "loss curve")

    report.heading("Samples")
    report.text("Greedy (temperature 0) and sampled (top-p 0.95) continuations; the prompt is in bold.")
    report.table(["temperature", "prompt and completion"], samples)

    report.heading("Sentence similarity (all-MiniLM-L6-v2)")
    report.table(
        [""] + [f"#{i + 1}" for i in range(len(SENTENCES))],
        [[f"#{i + 1} {s}"] + row for i, (s, row) in enumerate(zip(SENTENCES, similarity))],
    )
    report.text(f"Search: {SEARCH_QUERY!r}")
    report.table(["cosine", "document"], [(score, doc) for score, doc in ranked[:4]])
    report.text("Analogy: king - man + woman ≈")
    report.table(["cosine", "word"], words)
