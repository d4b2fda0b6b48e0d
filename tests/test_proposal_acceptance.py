"""scripts/proposal_acceptance.py scores proposals as the integrator's own MH test does."""
import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def script():
    return load_script("proposal_acceptance")


def test_scored_acceptance_matches_the_chain(script):
    acceptance, chain_rate = script.basin_acceptance("A", 1, "ace-ala-nme", states=60, steps_between=50,
                                                     proposals=16, seed=2)
    scores = np.concatenate([values for values in acceptance.values()])
    assert len(scores) == 60 * 16 and np.all(scores <= 0.0)
    assert sum(len(values) > 0 for values in acceptance.values()) >= 2  # beta and alpha_R at least
    # From stationary states, the mean of min(1, r) over proposals is the chain's acceptance rate.
    # Standard errors here: about 0.02 for the chain's 3,000 correlated steps and 0.02 for 60
    # states (acceptance varies by state with sd about 0.15), so 0.07 is about 2.5 sigma of the
    # difference; scoring with half the energy raised it by 0.09-0.12 (seeds 2-4).
    assert abs(np.exp(scores).mean() - chain_rate) < 0.07


def test_residue_out_of_range_is_an_error(script):
    with pytest.raises(ValueError, match="residue must lie in 1..2"):
        script.basin_acceptance("RW", 3, states=1)
