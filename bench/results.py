"""Benchmark figures: those of each tool, and their comparisons with the targets."""

from __future__ import annotations

import msgspec


class Plan(msgspec.Struct, kw_only=True, frozen=True):
    """The size of a case's data and the number of runs of each tool on it."""

    # "tiny" for the test suite, "full" for the sizes that the targets are set for.
    size: str
    repeats: int
    # Untimed runs before the timed ones, so that imports and the page cache are warm.
    warmups: int


class Side(msgspec.Struct, kw_only=True):
    """The figures of one tool (depictiod or a reference) on one case's data."""

    tool: str
    # Named figures, such as "seconds" (a median) or "p99_ms"; each case names its own.
    figures: dict[str, float]
    # Peak resident memory of the process that did the work, in MiB.
    peak_rss_mib: float
    # Rows in the table that the tool built, and the rows generated, to check the result.
    rows: int | None = None
    expected_rows: int | None = None
    # The timed samples behind a median, in seconds.
    samples: list[float] = msgspec.field(default_factory=list)


class Comparison(msgspec.Struct, kw_only=True, frozen=True):
    """One row of the final table: a depictiod figure, its reference, the ratio and the target."""

    case: str
    metric: str
    unit: str
    ours: float
    reference: str | None = None
    theirs: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None


def ratio_row(
    case: str, metric: str, unit: str, ours: float, reference: str, theirs: float, limit: float, higher_is_better: bool
) -> Comparison:
    """Compare depictiod with a reference by ratio (ours / theirs) against a target ratio."""
    ratio = ours / theirs if theirs > 0 else float("inf")
    met = ratio >= limit if higher_is_better else ratio <= limit
    sign = ">=" if higher_is_better else "<="
    return Comparison(
        case=case,
        metric=metric,
        unit=unit,
        ours=ours,
        reference=reference,
        theirs=theirs,
        ratio=ratio,
        target=f"ratio {sign} {limit:g}",
        met=met,
    )


def limit_row(
    case: str,
    metric: str,
    unit: str,
    ours: float,
    limit: float,
    reference: str | None = None,
    theirs: float | None = None,
) -> Comparison:
    """Compare a depictiod figure with an absolute upper limit; the reference, if any, is shown for scale."""
    ratio = ours / theirs if theirs else None
    return Comparison(
        case=case,
        metric=metric,
        unit=unit,
        ours=ours,
        reference=reference,
        theirs=theirs,
        ratio=ratio,
        target=f"<= {limit:g} {unit}",
        met=ours <= limit,
    )
