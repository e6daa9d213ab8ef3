"""A tiny CLIP BPE tokenizer and text encoder covering every embedded prompt.

Real CLIP has 49,408 tokens; the embedded model needs about a hundred. The vocab holds:
- every single character a-z 0-9, bare (word-inner) and with "</w>" (word-final), so an
  unknown word still tokenizes, character by character;
- each prompt word as one token, built by a chain of merges from its characters. CLIP BPE
  marks a word's last character with "</w>": d i g i t</w> -> "d i", "di g", "dig i",
  "digi t</w>";
- "<|startoftext|>" and "<|endoftext|>" last, as in CLIP (eos is also pad and unk).

Load it only with `CLIPTokenizer.from_pretrained(folder)`: the `vocab_file=`/`merges_file=`
constructor in transformers 5 ignores the files and builds a two-token tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# "a handwritten 3 moving left" is 5 words + bos + eos = 7 tokens.
TEXT_MAX_LENGTH = 8
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
# Longest first: a word's merges then rank before any shorter word's, so a shorter word's
# first merge ("r i" of "right") cannot break a longer word's chain ("handw r i tten").
WORDS = ("handwritten", "moving", "digit", "right", "left", "down", "up", "a",
         *"0123456789")
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
TEXT_ENCODER_SEED = 0


def _word_merges(word: str) -> list[tuple[str, str]]:
    """Merges that build `word` + "</w>" from its characters, left to right."""
    symbols = list(word[:-1]) + [word[-1] + "</w>"]
    merges, left = [], symbols[0]
    for right in symbols[1:]:
        merges.append((left, right))
        left += right
    return merges


def bpe_vocab(words=WORDS, chars: str = _CHARS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP BPE vocab and merges: single characters (with and without "</w>"), each word as
    one token built by a merge chain, then bos/eos last."""
    tokens = list(chars) + [c + "</w>" for c in chars]
    merges: list[tuple[str, str]] = []
    for word in words:
        for pair in _word_merges(word):
            if pair not in merges:
                merges.append(pair)
                tokens.append("".join(pair))
    tokens += [BOS, EOS]  # last, as in CLIP; keeps eos_id away from the legacy id 2
    return {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}, merges


def write_tokenizer(folder: Path, *, words=WORDS, chars: str = _CHARS, max_length: int = TEXT_MAX_LENGTH) -> None:
    """Write vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json. Load the
    result only with `CLIPTokenizer.from_pretrained(folder)`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = bpe_vocab(words, chars)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (folder / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    )
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": EOS}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": max_length,
              "do_lower_case": True, **specials}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def tiny_text_config(vocab_size: int, bos_id: int, eos_id: int, pad_id: int) -> CLIPTextConfig:
    """A 2-layer, 32-wide CLIP text encoder config for the tiny vocab.

    bos/eos must be the tiny vocab's ids: CLIPTextConfig defaults them to 49406/49407, and
    the pooled output is taken at the first `eos_token_id` position.
    """
    return CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=TEXT_MAX_LENGTH,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )


def build_text_encoder(folder: Path) -> tuple[CLIPTokenizer, CLIPTextModel]:
    """Create the tokenizer and a randomly initialised (seeded) text encoder.

    Saves them to `folder/tokenizer` and `folder/text_encoder`, the diffusers layout.
    """
    folder = Path(folder)
    write_tokenizer(folder / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    config = tiny_text_config(
        len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    )
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(TEXT_ENCODER_SEED)
        text_encoder = CLIPTextModel(config)
    tokenizer.save_pretrained(folder / "tokenizer")
    text_encoder.save_pretrained(folder / "text_encoder")
    return tokenizer, text_encoder
