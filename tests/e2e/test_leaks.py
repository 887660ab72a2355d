"""Open files, threads and memory stay flat over service lifecycles and rescans: the short version of `make leaks`.

10 starts and stops of the whole service, and 100 rescans after a file change, in this
process. The full version (`python -m bench.leaks`, 50 and 1,000) uses the same margins,
and docs/reliability.md records its figures.
"""

from __future__ import annotations

import pytest

from bench.leaks import Growth, Margins, Sample, check_flat, lifecycles, measure_growth, scan_cycles

LIFECYCLES = 10
SCANS = 100
MARGINS = Margins()


@pytest.fixture(scope="module")
def lifecycle_growth(tmp_path_factory: pytest.TempPathFactory) -> Growth:
    return measure_growth(lifecycles(tmp_path_factory.mktemp("lifecycles"), LIFECYCLES))


@pytest.fixture(scope="module")
def scan_growth(tmp_path_factory: pytest.TempPathFactory) -> Growth:
    return measure_growth(scan_cycles(tmp_path_factory.mktemp("scans"), SCANS))


def test_lifecycles_keep_open_files(lifecycle_growth: Growth) -> None:
    assert lifecycle_growth.open_files <= MARGINS.open_files, lifecycle_growth


def test_lifecycles_keep_threads(lifecycle_growth: Growth) -> None:
    assert lifecycle_growth.threads <= MARGINS.threads, lifecycle_growth
    assert lifecycle_growth.tasks <= MARGINS.tasks, lifecycle_growth


def test_lifecycles_keep_memory(lifecycle_growth: Growth) -> None:
    assert lifecycle_growth.rss_mib <= MARGINS.rss_mib, lifecycle_growth


def test_scans_keep_open_files(scan_growth: Growth) -> None:
    assert scan_growth.open_files <= MARGINS.open_files, scan_growth


def test_scans_keep_threads(scan_growth: Growth) -> None:
    assert scan_growth.threads <= MARGINS.threads, scan_growth
    assert scan_growth.tasks <= MARGINS.tasks, scan_growth


def test_scans_keep_memory(scan_growth: Growth) -> None:
    assert scan_growth.rss_mib <= MARGINS.rss_mib, scan_growth


def _samples(open_files: list[int]) -> list[Sample]:
    return [
        Sample(cycle=cycle, open_files=count, threads=1, tasks=5, rss_mib=200.0)
        for cycle, count in enumerate(open_files)
    ]


def test_check_flat_reports_growing_open_files() -> None:
    # Cycles 0 and 1 are the warm-up; the median of cycles 2-4 is 10 and that of 7-9 is 14.
    samples = _samples([3, 9, 10, 10, 10, 11, 12, 14, 14, 14])

    problems = check_flat("test", samples, Margins(open_files=2))

    assert len(problems) == 1
    assert problems[0].startswith("test: open_files grew by 4 from cycles 2-4 to cycles 7-9")


def test_check_flat_ignores_warmup_and_one_spike() -> None:
    samples = _samples([3, 9, 10, 10, 30, 10, 10, 10, 30, 10])

    assert check_flat("test", samples, Margins(open_files=2)) == []


def test_measure_growth_needs_enough_samples() -> None:
    with pytest.raises(ValueError, match="5 samples after the warm-up"):
        measure_growth(_samples([1, 1, 1, 1, 1, 1]))
