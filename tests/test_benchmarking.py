"""Helpers the benchmarks share: the bound a baseline gets for a basin it never entered."""
from __future__ import annotations

import pytest

from openmm_timewarp.benchmarking import MISSED_BASIN_ENTRIES, generous_ess_per_second


def test_a_missed_basin_is_credited_three_entries_and_an_entered_one_its_own():
    required = ["basin:beta", "basin:alpha_L"]
    missed = {"ess": {"sin_phi": 40.0, "basin:beta": 12.0, "basin:alpha_L": 0.0, "basin:other": 0.0}}
    assert MISSED_BASIN_ENTRIES == 3.0
    assert generous_ess_per_second(missed, 300.0, required) == pytest.approx(3.0 / 300.0)
    # Entered once: the run's own count stands (a bound is only for what was never seen); unlisted
    # basins do not count.
    once = {"ess": {"sin_phi": 40.0, "basin:beta": 12.0, "basin:alpha_L": 1.0, "basin:other": 0.0}}
    assert generous_ess_per_second(once, 300.0, required) == pytest.approx(1.0 / 300.0)
    assert generous_ess_per_second({"ess": {"sin_phi": 2.0, "basin:alpha_L": 0.0}}, 10.0, required) == 0.2
