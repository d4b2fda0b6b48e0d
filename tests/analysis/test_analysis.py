"""Tests of openmm_timewarp.analysis: basins, histograms, JSD, ESS, TICA, plots."""

import math
import os

import numpy as np
import pytest

from openmm_timewarp import analysis as an
from openmm_timewarp.reference.io import REFERENCE_DIR


def ar1(n: int, a: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = noise[0] / math.sqrt(1 - a * a)
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return x


def test_basin_assignment_of_known_minima():
    phi = np.array([-150, -65, -70, -85, 60, 70, 60, 60, -60, 179.9, 180.0])
    psi = np.array([160, 150, -15, 70, 30, -70, 180, -150, -130, 0.0, 0.0])
    names = [an.BASIN_NAMES[i] for i in an.assign_basins(phi, psi)]
    assert names == ["beta", "beta", "alpha_R", "beta", "alpha_L", "alpha_L", "PII_L", "PII_L",
                     "beta", "alpha_L", "alpha_R"]  # phi = 180 wraps to -180
    ind = an.basin_indicators(phi, psi)
    assert np.all(sum(ind[n] for n in an.BASIN_NAMES) == 1)
    assert np.array_equal(ind["phi>0"], ind["alpha_L"] + ind["PII_L"])


def test_histogram_normalised_and_wrapped():
    h = an.ramachandran_histogram([180.0, -180.0, 5.0], [0.0, 0.0, 359.0], weights=[1, 1, 2])
    assert h.shape == (36, 36) and math.isclose(h.sum(), 1.0)
    assert math.isclose(h[0, 18], 0.5)  # phi = 180 falls in the first bin, with -180
    assert math.isclose(h[18, 17], 0.5)  # psi = 359 wraps to -1


def test_jensen_shannon_values():
    rng = np.random.default_rng(0)
    p = rng.random((36, 36))
    assert an.jensen_shannon(p, p) == 0.0
    assert an.jensen_shannon(p, 3 * p) == pytest.approx(0.0, abs=1e-15)
    q = rng.random((36, 36))
    assert an.jensen_shannon(p, q) == pytest.approx(an.jensen_shannon(q, p))
    assert an.jensen_shannon([1, 0], [0, 1]) == pytest.approx(math.log(2))
    # Hand-computed: p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4).
    expected = 0.5 * (0.5 * math.log(2 / 3) + 0.5 * math.log(2)) + 0.5 * math.log(4 / 3)
    assert an.jensen_shannon([1, 1], [1, 0]) == pytest.approx(expected)
    with pytest.raises(ValueError):
        an.jensen_shannon(p, p[:-1])


def test_ess_of_iid_is_n():
    x = np.random.default_rng(1).standard_normal(20_000)
    assert an.effective_sample_size(x) == pytest.approx(20_000, rel=0.1)


@pytest.mark.parametrize("a", [0.5, 0.9])
def test_ess_of_ar1_matches_analytic(a):
    x = ar1(100_000, a, np.random.default_rng(2))
    g = (1 + a) / (1 - a)  # 1 + 2 * sum_k a^k
    assert an.statistical_inefficiency(x) == pytest.approx(g, rel=0.15)
    assert an.effective_sample_size(x) == pytest.approx(len(x) / g, rel=0.15)


def test_constant_series_has_no_samples():
    assert an.effective_sample_size(np.ones(100)) == 0.0


def test_basin_entries_and_cap_on_rare_blips():
    ind = np.zeros(10_000)
    ind[[100, 2000, 5000]] = 1.0  # three one-frame blips: iid-looking, but only 3 entries
    assert an.basin_entries(ind) == 3
    assert an.basin_entries([1, 1, 0, 1, 0, 0, 1]) == 3
    assert an.effective_sample_size(ind) > 1000
    report = an.ess_report({"basin:alpha_L": ind, "x": np.random.default_rng(3).standard_normal(10_000)})
    assert report["basin:alpha_L"] == 3.0 and report["min"] == 3.0
    never = an.ess_report({"basin:PII_L": np.zeros(100), "x": np.arange(100.0) % 2},
                          required_basins=[])
    assert never["basin:PII_L"] == 0.0 and never["min"] > 0.0


def test_observables_and_tica_find_the_slow_coordinate():
    rng = np.random.default_rng(4)
    n = 10_000
    # A slow two-state phi (flips rarely) and a fast, noisy psi.
    state = np.cumsum(rng.random(n) < 0.004) % 2
    phi = np.where(state == 1, 60.0, -75.0) + 10 * rng.standard_normal(n)
    psi = 150.0 + 20 * rng.standard_normal(n)
    features = an.dihedral_features(phi, psi)
    assert features.shape == (n, 4)
    model = an.fit_tica(features, lagtime=10)
    series = an.observables(phi, psi, model)
    assert set(series) == {"sin(phi)", "cos(phi)", "sin(psi)", "cos(psi)", "tica1", "basin:beta",
                           "basin:alpha_R", "basin:alpha_L", "basin:PII_L", "basin:phi>0"}
    assert abs(np.corrcoef(series["tica1"], state)[0, 1]) > 0.9
    report = an.ess_report(series)
    assert report["min"] == min(v for k, v in report.items() if k != "min")
    assert report["tica1"] < 0.1 * report["sin(psi)"]


def test_observables_name_residues_of_longer_peptides():
    phi = np.full((50, 2), -75.0) + np.arange(50)[:, None] % 3
    psi = np.full((50, 2), 145.0) + np.arange(50)[:, None] % 5
    names = set(an.observables(phi, psi))
    assert {"sin(phi0)", "cos(psi1)", "basin:beta:0", "basin:alpha_L:1"} <= names


def test_basin_populations_with_errors():
    rng = np.random.default_rng(5)
    phi = np.where(rng.random(10_000) < 0.3, 60.0, -75.0)
    psi = np.full(10_000, 40.0)
    pops = an.basin_populations(phi, psi)
    p, err = pops["alpha_L"]
    assert p == pytest.approx(0.3, abs=0.02)
    assert err == pytest.approx(math.sqrt(0.3 * 0.7 / 10_000), rel=0.2)  # iid: the plain error
    # Three long visits that the autocorrelation estimate over-counts: capped by the entries.
    phi = np.full(30_000, -75.0)
    for start in (1000, 11000, 21000):
        phi[start:start + 300] = 60.0
    p, err = an.basin_populations(phi, np.full(30_000, 40.0))["alpha_L"]
    assert p == pytest.approx(0.03)
    assert err >= p * (1 - p) / math.sqrt(3)
    assert pops["beta"][0] == 0.0 and math.isnan(pops["beta"][1])


def test_plot_writes_png(tmp_path):
    rng = np.random.default_rng(6)
    path = tmp_path / "rama.png"
    an.plot_free_energy(path, phi=rng.uniform(-180, 0, 500), psi=rng.uniform(-180, 180, 500))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backbone_dihedrals_of_built_peptide():
    from openmm_timewarp.systems import peptide_from_sequence

    top, pos = peptide_from_sequence("AV", phi=-60.0, psi=-45.0)
    phi, psi = an.backbone_dihedrals(pos, top)
    assert phi.shape == (1, 2)
    np.testing.assert_allclose(phi, -60.0, atol=0.5)
    np.testing.assert_allclose(psi, -45.0, atol=0.5)
    phi_idx, psi_idx = an.backbone_dihedral_indices(top)
    names = [[a.name for a in top.atoms()][i] for i in phi_idx[0]]
    assert names == ["C", "N", "CA", "C"]


reference_file = os.path.join(REFERENCE_DIR, "ace-ala-nme_310K.npz")


@pytest.mark.skipif(not os.path.exists(reference_file), reason="reference not made yet")
def test_reference_file_and_jsd_floor_in_nats():
    ref = an.load_reference("ace-ala-nme_310K")
    assert ref.histogram.shape == (36, 36) and ref.histogram.sum() == pytest.approx(1.0)
    assert 0.01 < ref.populations["phi>0"][0] < 0.05  # the rare basins are in the reference
    basins = [name for name in ref.populations if name != "phi>0"]
    assert sum(ref.populations[name][0] for name in basins) == pytest.approx(1.0)
    # DESIGN.md's floors (0.044 / 0.016 / 0.005 at 1k / 3k / 10k independent frames) are in
    # nats: this reference gives about 0.050 / 0.021 / 0.0074 nats, i.e. 0.072 / 0.030 / 0.011
    # bits (its tails fill more bins, which raises the floor at large n).
    rng = np.random.default_rng(7)
    p = ref.histogram.ravel()

    def floor(n):
        return np.mean([an.jensen_shannon(rng.multinomial(n, p), p) for _ in range(20)])

    assert floor(1000) == pytest.approx(0.044, rel=0.25)
    assert floor(1000) / math.log(2) > 1.4 * 0.044
    for n, design in ((3000, 0.016), (10000, 0.005)):
        assert 0.9 * design < floor(n) < 1.8 * design


def test_reference_of_a_dipeptide_has_one_histogram_per_residue(tmp_path, monkeypatch):
    from openmm_timewarp.reference import io as reference_module

    histograms = np.full((2, 36, 36), 1.0 / 36 ** 2)
    names = np.array(list(an.BASIN_NAMES) + ["phi>0"])
    pops = np.array([[0.5, 0.4, 0.08, 0.02, 0.1], [0.6, 0.4, 0.0, 0.0, 0.0]])
    np.savez(tmp_path / "ace-gly-met-nme_310K.npz", histogram=histograms, basin_names=names, populations=pops,
             population_errors=pops / 10, metadata='{"sequence": "GM"}')
    monkeypatch.setattr(reference_module, "REFERENCE_DIR", str(tmp_path))
    assert an.reference_name("gm") == "ace-gly-met-nme_310K" and an.reference_name("A", 300) == "ace-ala-nme_300K"
    ref = an.load_reference(an.reference_name("GM"))
    assert ref.histograms.shape == (2, 36, 36) and ref.histogram.shape == (36, 36)
    assert ref.residue_populations[1]["beta"] == (0.6, pytest.approx(0.06))
    assert ref.populations["alpha_L"] == (0.08, pytest.approx(0.008)) and ref.metadata["sequence"] == "GM"
    assert an.available_references() == ["ace-gly-met-nme_310K"]


def test_every_shipped_reference_loads():
    names = an.available_references()
    assert "ace-ala-nme_310K" in names and len(names) >= 9
    for name in names:
        ref = an.load_reference(name)
        assert ref.histograms.sum(axis=(1, 2)) == pytest.approx(np.ones(len(ref.histograms)))
        assert len(ref.residue_populations) == len(ref.metadata["sequence"])
    with pytest.raises(FileNotFoundError, match="make-reference"):
        an.load_reference("ace-xyz-nme_310K")
