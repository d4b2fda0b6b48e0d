"""Warnings for molecules outside a model's training domain (openmm_timewarp.domain)."""
import warnings

import pytest

from openmm_timewarp import TimewarpIntegrator, systems
from openmm_timewarp.domain import ModelDomainWarning, domain_warnings, trained_sequences


def test_trained_and_transferred_sequences_pass_silently():
    assert domain_warnings("A", ["A"], "m.pt") == []
    # Every residue seen, at a trained length: the transfer a dipeptide model is built for.
    assert domain_warnings("CD", ["AC", "DE"], "m.pt") == []
    assert domain_warnings("GM", [], "m.pt") == []  # nothing recorded: nothing to say


def test_each_reason_is_named():
    (unseen,) = domain_warnings("AW", ["AC", "DE"], "m.pt")
    assert "residue(s) W of AW occur in none of the sequences m.pt was trained on (AC, DE)" in unseen
    assert "Metropolis-Hastings keeps the sampling exact" in unseen
    (longer,) = domain_warnings("ACD", ["AC", "DE"], "m.pt")
    assert "ACD has 3 residues between the caps; m.pt was trained on peptides of at most 2" in longer
    assert len(domain_warnings("ACW", ["AC", "DE"], "m.pt")) == 2
    (single,) = domain_warnings("AA", ["A"], "m.pt")
    assert "at most 1" in single
    (single,) = domain_warnings("A", ["G"], "m.pt")
    assert "residue(s) A of A" in single
    (single,) = domain_warnings("CA", ["AC"], "m.pt")
    assert "m.pt was trained on AC only, not on CA (not a transferable model)" in single


def test_the_kernels_that_move_peptides_define_the_domain():
    flow_only = {"sequences": ["A"]}
    assert trained_sequences(flow_only) == ["A"]
    pivots = {"sequences": ["A"], "backbone": {"weight": 1.0, "sequences": ["A", "GM"]}}
    assert trained_sequences(pivots) == ["A", "GM"]
    mixed = {"sequences": ["A"], "backbone": {"weight": 0.9, "sequences": ["A", "GM"]}}
    assert trained_sequences(mixed) == ["A"]  # the flow moves peptides too: its narrower domain counts


def test_integrator_warns_for_a_peptide_outside_the_shipped_model():
    topology, _ = systems.peptide_from_sequence("GM")
    with pytest.warns(ModelDomainWarning, match="residue\\(s\\) G, M of GM"):
        TimewarpIntegrator("ace-ala-nme", topology)
    topology, _ = systems.peptide_from_sequence("A")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelDomainWarning)
        TimewarpIntegrator("ace-ala-nme", topology)
