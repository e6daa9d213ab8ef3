"""`RUN/final/README.md`: a Hugging Face model card that parses back with `ModelCard.load`."""

from __future__ import annotations

from huggingface_hub import ModelCard

from seppo.api import record_in_cards
from seppo.card import EVAL_START, NOT_EVALUATED, is_seppo_card, write_model_card
from seppo.config import load_config
from seppo.evaluate import evaluate
from seppo.train import train


def test_export_writes_a_card_that_loads_back(tiny_config, tmp_path):
    run = train(tiny_config(tmp_path / "run", "method=sft", "log.report_to=none"))
    card = ModelCard.load(run / "final" / "README.md")
    assert card.data.base_model == "embedded:digits"
    assert card.data.library_name == "diffusers" and card.data.pipeline_tag == "text-to-image"
    assert {"seppo", "seppo-sft"} <= set(card.data.tags) and "lora" not in card.data.tags
    text = card.text
    for section in ("## Method", "## Data", "## Evaluation", "## How to load"):
        assert section in text
    assert "| `train.lr` |" in text and "| `flipper` |" not in text  # SFT uses no flipper
    assert "A pass over it saw" in text  # the data summary
    assert NOT_EVALUATED in text and 'UNet2DConditionModel.from_pretrained("' in text

    result = evaluate([str(run)], names=["sft"], prompts=["a handwritten digit 3"], judges=["digit"], seeds=[0],
                      steps=2, guidance=2.0, progress=False, n_boot=50)
    assert record_in_cards(result, prompts="one digit") == [run / "final" / "README.md"]
    card = ModelCard.load(run / "final" / "README.md")
    assert NOT_EVALUATED not in card.text and "| sft |" in card.text and card.text.count(EVAL_START) == 1
    (scored,) = card.data.eval_results
    assert scored.metric_type == "digit" and scored.metric_value == round(result.summary[0]["mean"], 6)


def test_lora_card_says_how_to_load_the_adapter(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "model_index.json").write_text("{}")  # a diffusers pipeline folder
    cfg = load_config(None, ["train.mode=lora", "method=dpo", "model.path=/models/sd15", "data.source=pickapic",
                             "data.path=/data/pairs.parquet"])
    (tmp_path / "final").mkdir()
    path = write_model_card(tmp_path / "final", cfg, base, tmp_path / "final", lora=True, video=False,
                            data_summary={"seen": 10, "used": 8, "ties_dropped": 1, "bad": 1, "empty_captions": 0})
    card = ModelCard.load(path)
    assert card.data.base_model == "/models/sd15" and "lora" in card.data.tags and is_seppo_card(tmp_path / "final")
    assert "pipe.load_lora_weights(" in card.text and "DiffusionPipeline.from_pretrained(" in card.text
    assert "preference pairs (winner and loser)" in card.text and "saw 10 records and used 8" in card.text
    assert "| `train.lora_rank` |" in card.text and "| `flipper` |" not in card.text  # DPO has no flipper
