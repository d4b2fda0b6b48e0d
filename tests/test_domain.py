"""Warnings for molecules outside a model's training domain (openmm_timewarp.domain, ModelFile)."""
import dataclasses
import warnings


from openmm_timewarp import TimewarpIntegrator, systems
from openmm_timewarp.domain import ModelDomainWarning, domain_warnings
from openmm_timewarp.errors import ModelDomainWarning as ModelDomainWarningFromErrors
from openmm_timewarp.model_file import ModelFile


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


def test_the_warning_class_has_one_home():
    assert ModelDomainWarning is ModelDomainWarningFromErrors


def test_the_kernels_that_move_peptides_define_the_domain():
    shipped = ModelFile.open("ace-ala-nme")

    def with_metadata(metadata: dict) -> ModelFile:
        return dataclasses.replace(shipped, metadata=metadata)

    assert with_metadata({"sequences": ["A"]}).trained_sequences == ["A"]
    pivots = with_metadata({"sequences": ["A"], "backbone": {"weight": 1.0, "sequences": ["A", "GM"]}})
    assert pivots.trained_sequences == ["A", "GM"] and pivots.domain_warnings("GM") == []
    mixed = with_metadata({"sequences": ["A"], "backbone": {"weight": 0.9, "sequences": ["A", "GM"]}})
    assert mixed.trained_sequences == ["A"]  # the flow moves peptides too: its narrower domain counts
    assert any("residue(s) G, M of GM occur in none of the sequences ace-ala-nme was trained on (A)" in warning
               for warning in mixed.domain_warnings("GM"))


def test_the_shipped_model_file_names_its_domain():
    shipped = ModelFile.open("ace-ala-nme")
    assert shipped.trained_sequences == ["A"] and shipped.domain_warnings("A") == []
    assert any("residue(s) G, M of GM" in w for w in shipped.domain_warnings("GM"))


# The integrator's own warning reads the ModelFile once engineer A's integrator lands (issue 18);
# until then integrator.py imports domain.model_metadata, which moved to ModelFile.
def test_integrator_warns_for_a_peptide_outside_the_shipped_model():
    topology, _ = systems.peptide_from_sequence("GM")
    with warnings.catch_warnings(record=True) as caught:  # not pytest.warns, which would hide an ImportError
        warnings.simplefilter("always")
        TimewarpIntegrator("ace-ala-nme", topology)
    assert any(issubclass(w.category, ModelDomainWarning) and "residue(s) G, M of GM" in str(w.message)
               for w in caught)
    topology, _ = systems.peptide_from_sequence("A")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelDomainWarning)
        TimewarpIntegrator("ace-ala-nme", topology)
