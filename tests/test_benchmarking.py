"""Helpers the benchmarks share: the bound a baseline gets for a basin it never entered, and the
replica-exchange baseline (its temperature ladder, and that its samples are the 310 K state's)."""
from __future__ import annotations

import numpy as np
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


@pytest.fixture(scope="module")
def alanine():
    import openmm as mm

    from openmm_timewarp import systems

    topology, positions = systems.peptide_from_sequence("A")
    start = systems.thermalize(systems.create_system(topology), positions, 310.0, picoseconds=2.0)
    return topology, start, mm.Platform.getPlatformByName("Reference")


def test_temperature_ladder_is_geometric_and_denser_for_a_higher_exchange_target(alanine):
    from openmm_timewarp import systems
    from openmm_timewarp.benchmarking import USER_PRACTICE, temperature_ladder

    topology, start, platform = alanine
    system = systems.create_system(topology, **USER_PRACTICE)
    sparse = temperature_ladder(system, start, platform, t_max=450.0, acceptance=0.1, pilot_ps=10.0)
    dense = temperature_ladder(system, start, platform, t_max=450.0, acceptance=0.6, pilot_ps=10.0)
    for ladder in (sparse, dense):
        assert ladder[0] == pytest.approx(310.0) and ladder[-1] == pytest.approx(450.0)
        ratios = np.array(ladder[1:]) / np.array(ladder[:-1])
        assert np.allclose(ratios, ratios[0])
    assert len(dense) > len(sparse)


def test_replica_exchange_keeps_the_310_K_state_samples(alanine):
    """The frames are the 310 K state's: their potential energy matches MD at 310 K, far from 600 K's,
    although every replica visits both temperatures (a wrong replica would mix the two)."""
    import openmm as mm
    from openmm import unit

    from openmm_timewarp import systems
    from openmm_timewarp.benchmarking import USER_PRACTICE, md_run, remd_run

    topology, start, platform = alanine
    system = systems.create_system(topology, **USER_PRACTICE)
    context = mm.Context(system, mm.VerletIntegrator(0.001), platform)

    def energies(frames):
        out = []
        for x in frames:
            context.setPositions(x)
            out.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
        return np.array(out)

    remd = remd_run(topology, start, 6.0, 1.0, platform, 3, [310.0, 600.0])
    md = md_run(topology, start, 3.0, 4.0, 1.0, platform, 3, True)
    assert remd["round_trips"] >= 3 and remd["state0_changes"] > 0.01
    assert remd["simulated_ns"] == pytest.approx(2 * len(remd["frames"]) * 1e-3)
    remd_energy, md_energy = energies(remd["frames"][20:]), energies(md["frames"][20:])
    hot = remd_run(topology, start, 3.0, 1.0, platform, 3, [600.0, 600.0])
    hot_energy = energies(hot["frames"][20:])
    # 310 K and 600 K differ by about 100 kJ/mol here; the spread of a mean is about 1.
    assert hot_energy.mean() - md_energy.mean() > 50.0
    assert abs(remd_energy.mean() - md_energy.mean()) < 12.0


def test_the_strongest_baseline_is_measured_when_one_entered_every_basin_else_a_bound():
    from openmm_timewarp.benchmarking import strongest_baseline

    required = ["basin:beta", "basin:alpha_L"]
    seconds = {"md": 600.0, "remd": 600.0}
    entered = {"ess_per_second": 0.02, "ess": {"sin_phi": 50.0, "basin:beta": 12.0, "basin:alpha_L": 12.0}}
    missed = {"ess_per_second": 0.0, "ess": {"sin_phi": 90.0, "basin:beta": 40.0, "basin:alpha_L": 0.0}}
    # A baseline that entered every basin beats one whose bound (three entries: 0.005/s) is lower.
    assert strongest_baseline({"md": missed, "remd": entered}, seconds, required) == ("remd", 0.02, False)
    # Neither entered alpha_L: the higher bound is returned, and marked as a bound.
    worse = {"ess_per_second": 0.0, "ess": {"sin_phi": 1.0, "basin:beta": 40.0, "basin:alpha_L": 0.0}}
    name, value, is_bound = strongest_baseline({"md": worse, "remd": missed}, seconds, required)
    assert (name, is_bound) == ("remd", True) and value == pytest.approx(3.0 / 600.0)


def test_timewarp_replica_exchange_keeps_every_step_of_the_cold_state(tmp_path):
    """With ``every_step`` the frames are the conformations after every step of the replica that
    holds the first state (argon in a harmonic well at 300 K, with 600 K beside it): ``steps`` frames
    per iteration, with the 300 K moments and not the 600 K ones."""
    import math

    import openmm as mm
    from openmm import app

    import known_proposals as proposals
    from conftest import Z_LIMIT, harmonic_system, harmonic_z_scores
    from openmm_timewarp.benchmarking import timewarp_remd_run

    model = proposals.save(proposals.GaussianDriftProposal(0.1, 0.4, ["Ar"]), tmp_path / "drift.pt")
    topology = app.Topology()
    topology.addAtom("AR", app.Element.getBySymbol("Ar"), topology.addResidue("AR", topology.addChain()))
    run = timewarp_remd_run(model, topology, harmonic_system(), [mm.Vec3(0.0, 0.0, 0.0)], 8.0, 5, [300.0, 600.0], 4,
                            mm.Platform.getPlatformByName("Reference"), every_step=True)
    x = run["frames"][:, 0]
    assert len(x) == 4 * run["iterations"] and len(run["times"]) == len(x)
    assert run["state0_changes"] > 0.05 and len(x) > 4000
    assert harmonic_z_scores(x, 0.5).max() < Z_LIMIT
    assert harmonic_z_scores(x, 0.5 * math.sqrt(2.0)).max() > Z_LIMIT
