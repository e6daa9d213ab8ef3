"""Evaluation prompt sets, each read into a `list[str]` by `load_prompts(spec)`.

| spec            | source                                                                 |
|-----------------|------------------------------------------------------------------------|
| `pickapic:PATH` | Pick-a-Pic parquet (file, folder or glob), column `caption`, unique captions in order of first appearance (`validation_unique` has 500) |
| `parti:PATH`    | PartiPrompts: `PartiPrompts.tsv` (column `Prompt`) or parquet with that column |
| `hps:PATH`      | HPSv2 benchmark JSON (a list of strings, or of objects with `prompt`), or a folder of them (anime, concept-art, paintings, photo, read in name order) |
| `digits`        | the embedded demo's prompts, `DIGIT_PROMPTS`                           |
| `moving-digits` | the embedded video world's 40 prompts (digit × direction)              |
| `PATH`          | a text file, one prompt per line, blank lines skipped                  |

Every problem raises `DataError` naming the file (and the column or row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from seppo.data.sources import matching_files
from seppo.embedded.clips import all_video_prompts
from seppo.embedded.digits import digit_prompt
from seppo.errors import DataError

DIGIT_PROMPTS: list[str] = [digit_prompt(digit) for digit in range(10)]


def _files(path: str, pattern: str) -> list[Path]:
    return matching_files(path, pattern, missing=f"prompt file not found: {path}",
                          empty=f"no {pattern} prompt files in {path}")


def _strings(values, source: Path, where: str) -> list[str]:
    """Check every prompt is a string; name the first row that is not."""
    for row, value in enumerate(values):
        if not isinstance(value, str):
            raise DataError(f"{source}: {where} row {row} is {value!r}, not a string")
    return list(values)


def _parquet_column(path: Path, column: str) -> list[str]:
    try:
        schema = pq.read_schema(path)
        if column not in schema.names:
            raise DataError(f"{path}: no column {column!r} (columns: {', '.join(schema.names)})")
        values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    except (OSError, ValueError) as err:  # pyarrow's errors for a file that is not parquet
        raise DataError(f"cannot read parquet {path}: {str(err).splitlines()[0]}") from err
    return _strings(values, path, f"column {column!r}")


def load_pickapic_prompts(path: str) -> list[str]:
    """Unique `caption`s, in order of first appearance, from Pick-a-Pic parquet shards."""
    captions = [c for file in _files(path, "*.parquet") for c in _parquet_column(file, "caption")]
    return list(dict.fromkeys(captions))


def load_parti_prompts(path: str) -> list[str]:
    """The `Prompt` column of PartiPrompts, from its TSV or from parquet, in file order."""
    prompts = []
    for file in _files(path, "*.parquet"):
        if file.suffix in (".tsv", ".txt"):
            prompts += _tsv_column(file, "Prompt")
        else:
            prompts += _parquet_column(file, "Prompt")
    return prompts


def _tsv_column(path: Path, column: str) -> list[str]:
    try:
        # keep_default_na=False: a prompt such as "None" or "NA" stays a string.
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read TSV {path}: {str(err).splitlines()[0]}") from err
    if column not in table.columns:
        raise DataError(f"{path}: no column {column!r} (columns: {', '.join(table.columns)})")
    return _strings(table[column].tolist(), path, f"column {column!r}")


def load_hps_prompts(path: str) -> list[str]:
    """HPSv2 benchmark prompts from one JSON file or a folder of them."""
    prompts = []
    for file in _files(path, "*.json"):
        try:
            entries = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read JSON {file}: {err}") from err
        if not isinstance(entries, list):
            raise DataError(f"{file}: expected a JSON list of prompts, got {type(entries).__name__}")
        for row, entry in enumerate(entries):
            prompt = entry.get("prompt") if isinstance(entry, dict) else entry
            if not isinstance(prompt, str):
                raise DataError(f"{file}: row {row} is neither a string nor an object with a 'prompt' string")
            prompts.append(prompt)
    return prompts


def load_text_prompts(path: str) -> list[str]:
    """One prompt per line; surrounding whitespace stripped, blank lines skipped."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"prompt file not found: {path} (or use pickapic:, parti:, hps: or digits)")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read prompt file {file}: {err}") from err
    return [line.strip() for line in lines if line.strip()]


_LOADERS = {"pickapic": load_pickapic_prompts, "parti": load_parti_prompts, "hps": load_hps_prompts}


def load_prompts(spec: str) -> list[str]:
    """Read the prompt set named by `spec` (see the module table); `DataError` if empty."""
    if spec == "digits":
        return list(DIGIT_PROMPTS)
    if spec == "moving-digits":
        return all_video_prompts()
    prefix, colon, path = spec.partition(":")
    if colon and prefix in _LOADERS:
        prompts = _LOADERS[prefix](path)
    else:
        prompts = load_text_prompts(spec)
    if not prompts:
        raise DataError(f"no prompts in {spec}")
    return prompts
