"""seppo.prompts on small files written here, including every error path."""

import json

import pandas as pd
import pytest

from seppo.errors import DataError
from seppo.prompts import DIGIT_PROMPTS, load_prompts


def _parquet(path, **columns):
    pd.DataFrame(columns).to_parquet(path)
    return path


def test_digits():
    assert load_prompts("digits") == [f"a handwritten digit {d}" for d in range(10)]
    assert load_prompts("digits") is not DIGIT_PROMPTS  # callers may mutate their copy


def test_pickapic_unique_captions_in_first_appearance_order_across_shards(tmp_path):
    _parquet(tmp_path / "validation_unique-00000.parquet", caption=["b cat", "a dog", "b cat"], label_0=[1, 0, 1])
    _parquet(tmp_path / "validation_unique-00001.parquet", caption=["a dog", "c fox"], label_0=[0, 1])
    assert load_prompts(f"pickapic:{tmp_path}") == ["b cat", "a dog", "c fox"]
    assert load_prompts(f"pickapic:{tmp_path}/*00001.parquet") == ["a dog", "c fox"]
    assert load_prompts(f"pickapic:{tmp_path}/validation_unique-00000.parquet") == ["b cat", "a dog"]


def test_pickapic_missing_column_names_column_and_file(tmp_path):
    shard = _parquet(tmp_path / "x.parquet", prompt=["a"])
    with pytest.raises(DataError, match=r"x\.parquet: no column 'caption'"):
        load_prompts(f"pickapic:{shard}")


def test_pickapic_null_caption_names_the_row(tmp_path):
    shard = _parquet(tmp_path / "x.parquet", caption=["a", None])
    with pytest.raises(DataError, match="row 1"):
        load_prompts(f"pickapic:{shard}")


def test_pickapic_not_parquet_and_empty_folder(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match="bad.parquet"):
        load_prompts(f"pickapic:{bad}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no \\*.parquet prompt files in .*empty"):
        load_prompts(f"pickapic:{empty}")


def test_parti_tsv_keeps_order_and_literal_na(tmp_path):
    tsv = tmp_path / "PartiPrompts.tsv"
    tsv.write_text("Prompt\tCategory\tChallenge\nbear\tAnimals\tBasic\nNA\tAbstract\tBasic\nbear\tAnimals\tBasic\n")
    assert load_prompts(f"parti:{tsv}") == ["bear", "NA", "bear"]


def test_parti_parquet_and_missing_column(tmp_path):
    shard = _parquet(tmp_path / "parti.parquet", Prompt=["one", "two"])
    assert load_prompts(f"parti:{shard}") == ["one", "two"]
    tsv = tmp_path / "wrong.tsv"
    tsv.write_text("prompt\tCategory\nbear\tAnimals\n")
    with pytest.raises(DataError, match=r"wrong\.tsv: no column 'Prompt'"):
        load_prompts(f"parti:{tsv}")


def test_hps_folder_of_strings_and_objects(tmp_path):
    (tmp_path / "photo.json").write_text(json.dumps([{"prompt": "p1", "id": 3}, {"prompt": "p2"}]))
    (tmp_path / "anime.json").write_text(json.dumps(["a1", "a2"]))
    assert load_prompts(f"hps:{tmp_path}") == ["a1", "a2", "p1", "p2"]  # name order: anime first
    assert load_prompts(f"hps:{tmp_path / 'photo.json'}") == ["p1", "p2"]


def test_hps_errors_name_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[1,")
    with pytest.raises(DataError, match="broken.json"):
        load_prompts(f"hps:{broken}")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([{"text": "x"}]))
    with pytest.raises(DataError, match="wrong.json: row 0"):
        load_prompts(f"hps:{wrong}")
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"prompt": "x"}))
    with pytest.raises(DataError, match="mapping.json: expected a JSON list"):
        load_prompts(f"hps:{mapping}")


def test_text_file_skips_blank_lines(tmp_path):
    txt = tmp_path / "prompts.txt"
    txt.write_text("a red cube\n\n   \n  a blue ball  \n")
    assert load_prompts(str(txt)) == ["a red cube", "a blue ball"]


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="nope.txt"):
        load_prompts(str(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match="nope.parquet"):
        load_prompts(f"pickapic:{tmp_path / 'nope.parquet'}")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no prompts in .*empty.txt"):
        load_prompts(str(empty))
