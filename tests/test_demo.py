"""The main job end to end, with a few training steps: every section of the report is there."""

import pytest

from alltokens.demo import MARKER, _prepare, run_demo


@pytest.mark.slow
def test_demo_writes_the_report(tmp_path):
    lines = []
    report = run_demo(out=tmp_path / "demo", quick=True, steps=4, log=lines.append)
    page = report.read_text()
    sections = [
        "Text becomes tokens",
        "Training the language model",
        "Samples",
        "Sentence similarity",
        "Images become patch tokens",
        "CLIP: zero-shot digits",
        "A LLaVA-style vision-language model",
    ]
    for section in sections:
        assert section in page
    assert 'class="tokens"' in page and "data:image/png;base64" in page
    assert any("king - man + woman = queen" in line for line in lines)
    assert "14x14 patches of 16px = 196 tokens" in page
    assert 'class="right"' in page or 'class="wrong"' in page  # answers marked
    for run in ["lm", "clip-digits", "clip-shapes", "vlm"]:
        assert (tmp_path / "demo" / run / "model.safetensors").exists(), run


def test_demo_refuses_a_directory_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not made by the demo"):
        run_demo(out=tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert not (tmp_path / MARKER).exists()


def test_a_rerun_clears_only_the_demo_directory(tmp_path):
    _prepare(tmp_path / "demo")
    (tmp_path / "demo" / "old.txt").write_text("from the last run")
    _prepare(tmp_path / "demo")
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [MARKER]
