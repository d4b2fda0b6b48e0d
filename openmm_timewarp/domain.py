"""Whether a peptide lies inside a model's training domain, and why not.

A proposal model outside its training domain still samples exactly under Metropolis-Hastings
(the acceptance test sees OpenMM's energy), but its proposals may be poor, so the acceptance
rate and the sampling speed can collapse.  This module holds the rule alone; the sequences a
model was trained on come from :attr:`openmm_timewarp.model_file.ModelFile.trained_sequences`,
and :meth:`~openmm_timewarp.model_file.ModelFile.domain_warnings` applies the rule to a model.
"""
from __future__ import annotations

from typing import List, Sequence

from .errors import ModelDomainWarning

__all__ = ["ModelDomainWarning", "domain_warnings"]


def domain_warnings(sequence: str, trained: Sequence[str], model_name: str) -> List[str]:
    """Reasons why ``sequence`` (one-letter, between the caps) lies outside the training domain.

    Parameters
    ----------
    sequence
        The peptide, e.g. ``"GM"`` for ACE-GLY-MET-NME.
    trained
        The training sequences (:attr:`ModelFile.trained_sequences`); empty if unknown (no warning).
    model_name
        Named in the messages.

    Returns
    -------
    list of str
        Empty when the model was trained on this sequence, or on several sequences that include
        every residue of it at no shorter length (the transfer it was built for).
    """
    if not trained or not sequence or sequence in trained:
        return []
    consequence = ("Metropolis-Hastings keeps the sampling exact, but expect a lower acceptance rate and "
                   "slower sampling than the model's benchmarks")
    reasons = []
    unseen = sorted(set(sequence) - set("".join(trained)))
    if unseen:
        reasons.append(f"residue(s) {', '.join(unseen)} of {sequence} occur in none of the sequences "
                       f"{model_name} was trained on ({_listed(trained)})")
    longest = max(len(s) for s in trained)
    if len(sequence) > longest:
        reasons.append(f"{sequence} has {len(sequence)} residues between the caps; {model_name} was trained on "
                       f"peptides of at most {longest}")
    if len(trained) == 1 and not reasons:
        reasons.append(f"{model_name} was trained on {trained[0]} only, not on {sequence} (not a transferable model)")
    return [f"{reason}: {consequence}" for reason in reasons]


def _listed(sequences: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(sequences[:limit])
    return shown + (f" and {len(sequences) - limit} more" if len(sequences) > limit else "")
