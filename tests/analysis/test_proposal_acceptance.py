"""openmm_timewarp.analysis.acceptance scores proposals as the integrator's own MH test does."""
import numpy as np
import pytest

from openmm_timewarp.analysis.acceptance import AcceptanceSettings, basin_acceptance
from openmm_timewarp.errors import InputError


def test_scored_acceptance_matches_the_chain():
    settings = AcceptanceSettings("A", 1, "ace-ala-nme", states=60, steps_between=50, proposals=16, seed=2)
    acceptance, chain_rate = basin_acceptance(settings)
    scores = np.concatenate([values for values in acceptance.values()])
    assert len(scores) == 60 * 16 and np.all(scores <= 0.0)
    assert sum(len(values) > 0 for values in acceptance.values()) >= 2  # beta and alpha_R at least
    # From stationary states, the mean of min(1, r) over proposals is the chain's acceptance rate.
    # Standard errors here: about 0.02 for the chain's 3,000 correlated steps and 0.02 for 60
    # states (acceptance varies by state with sd about 0.15), so 0.07 is about 2.5 sigma of the
    # difference; scoring with half the energy raised it by 0.09-0.12 (seeds 2-4).
    assert abs(np.exp(scores).mean() - chain_rate) < 0.07


def test_residue_out_of_range_is_an_error():
    with pytest.raises(InputError, match="residue must lie in 1..2"):
        AcceptanceSettings("RW", 3, states=1)
