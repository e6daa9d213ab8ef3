"""Per-record error handling shared by every winner source: count, skip or stop on bad rows.

Every source reads its rows as `Record`s: a `where` plus a `load()` that decodes the row.
Decoding happens one record at a time inside `examples`, so a corrupt image or a bad label
in one row raises a `DataError` that a `SkipPolicy` can count and skip, without losing the
rest of the stream. Problems that spoil a whole shard (a missing column, a missing file)
always raise.

    policy = SkipPolicy(on_bad_record="skip")
    for example in pickapic_source("data/train-*.parquet", policy=policy): ...
    print(policy.summary)

or, with the factory form the run uses, `guard_bad_records(lambda p: pickapic_source(..., policy=p))`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from seppo.data.examples import Example
from seppo.errors import ConfigError, DataError

_MIN_BAD_TO_ABORT = 10  # mid-stream aborts need this many bad records, so one early bad row
#                         in a big, mostly clean set does not look like a high bad fraction


class _Tie:
    """What `Record.load` returns for a Pick-a-Pic tie: dropped and counted, not an error."""


TIE = _Tie()


@dataclass
class Record:
    """One row, not yet decoded: `load()` returns an `Example`, `TIE`, or raises DataError."""

    where: str
    load: Callable[[], "Example | _Tie"]


# ---------------------------------------------------------------------------------------------
# Counting and skipping bad records
# ---------------------------------------------------------------------------------------------


@dataclass
class DataSummary:
    """What a pass over a source saw; the run prints it and the cache stores it."""

    seen: int = 0
    used: int = 0
    ties_dropped: int = 0
    empty_captions: int = 0  # valid: they train the unconditional prompt
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)  # the first few "where: message"

    def as_dict(self) -> dict:
        return {"seen": self.seen, "used": self.used, "ties_dropped": self.ties_dropped,
                "empty_captions": self.empty_captions, "bad": self.bad,
                "bad_examples": list(self.bad_examples)}

    def __str__(self) -> str:
        text = (f"seen {self.seen}, used {self.used}, ties dropped {self.ties_dropped}, "
                f"empty captions {self.empty_captions}, bad {self.bad}")
        return text + (f" (first: {'; '.join(self.bad_examples)})" if self.bad_examples else "")


class SkipPolicy:
    """Whether a bad record stops the run ("error") or is counted and skipped ("skip").

    With "skip", the run still stops once more than `max_bad_fraction` of the records seen
    are bad: checked along the way once `min_seen` records (and a handful of bad ones) are
    in, and always at the end.
    """

    KEEP_EXAMPLES = 5

    def __init__(self, on_bad_record: str = "error", *, max_bad_fraction: float = 0.01, min_seen: int = 20):
        if on_bad_record not in ("error", "skip"):
            raise ConfigError(f"data.on_bad_record is {on_bad_record!r}, expected 'error' or 'skip'")
        self.on_bad_record, self.max_bad_fraction, self.min_seen = on_bad_record, max_bad_fraction, min_seen
        self.summary = DataSummary()

    def used(self, example: Example) -> None:
        self.summary.seen += 1
        self.summary.used += 1
        self.summary.empty_captions += not example.prompt

    def tie(self) -> None:
        self.summary.seen += 1
        self.summary.ties_dropped += 1

    def bad(self, error: DataError) -> None:
        """Count a bad record; re-raise it unless skipping, and stop if too many are bad."""
        if self.on_bad_record == "error":
            raise error
        self.summary.seen += 1
        self.summary.bad += 1
        if len(self.summary.bad_examples) < self.KEEP_EXAMPLES:
            self.summary.bad_examples.append(str(error))
        if self.summary.seen >= self.min_seen and self.summary.bad >= _MIN_BAD_TO_ABORT:
            self.check()

    def check(self) -> None:
        """Raise if the bad fraction so far is over the limit."""
        s = self.summary
        if s.seen and s.bad / s.seen > self.max_bad_fraction:
            raise DataError(
                f"{s.bad} of {s.seen} records were bad ({s.bad / s.seen:.1%}, over "
                f"data.max_bad_fraction {self.max_bad_fraction:.1%}); first: {'; '.join(s.bad_examples)}"
            )


class GuardedExamples:
    """Iterable of examples from `factory(policy)`, with the pass's `summary`."""

    def __init__(self, factory: Callable[[SkipPolicy], Iterable[Example]], **policy_kwargs):
        self.factory, self.policy_kwargs = factory, policy_kwargs
        self.policy = SkipPolicy(**policy_kwargs)

    @property
    def summary(self) -> DataSummary:
        return self.policy.summary

    def __iter__(self) -> Iterator[Example]:
        self.policy = SkipPolicy(**self.policy_kwargs)  # each pass counts afresh
        yield from self.factory(self.policy)
        self.policy.check()


def guard_bad_records(
    examples_iter_factory: Callable[[SkipPolicy], Iterable[Example]],
    *,
    on_bad_record: str = "error",
    max_bad_fraction: float = 0.01,
    min_seen: int = 20,
) -> GuardedExamples:
    """Wrap a source so bad records are skipped (or not) under one policy; see `SkipPolicy`.

    The factory receives the policy and passes it to the source:
    `guard_bad_records(lambda policy: open_source("pickapic", path, policy=policy), ...)`.
    """
    return GuardedExamples(examples_iter_factory, on_bad_record=on_bad_record,
                           max_bad_fraction=max_bad_fraction, min_seen=min_seen)


def examples(records: Iterator[Record], policy: SkipPolicy | None) -> Iterator[Example]:
    """Decode records one by one under the policy: the heart of per-record error handling."""
    policy = policy or SkipPolicy("error")
    for record in records:
        try:
            example = record.load()
        except DataError as error:
            policy.bad(error)
            continue
        if example is TIE:
            policy.tie()
            continue
        policy.used(example)
        yield example
    policy.check()
