"""What a model was trained for, and the warnings a molecule outside it deserves.

A proposal model outside its training domain still samples exactly under Metropolis-Hastings
(the acceptance test sees OpenMM's energy), but its proposals may be poor, so the acceptance
rate and the sampling speed can collapse.  Users get told why, once, when they build the
integrator or prepare the peptide.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Dict, List, Sequence

__all__ = ["ModelDomainWarning", "model_metadata", "trained_sequences", "domain_warnings"]


class ModelDomainWarning(UserWarning):
    """A molecule lies outside what the proposal model was trained for."""


def model_metadata(path: str) -> Dict:
    """The provenance a model file records (``metadata_json()``), read once per file version."""
    return dict(_metadata(os.path.abspath(path), os.path.getmtime(path)))


@functools.lru_cache(maxsize=8)
def _metadata(path: str, mtime: float) -> Dict:
    from .trained import load_module

    module = load_module(path)
    return json.loads(module.metadata_json()) if hasattr(module, "metadata_json") else {}


def trained_sequences(metadata: Dict) -> List[str]:
    """The sequences whose data trained the kernels that move a peptide.

    A backbone density with weight 1 makes every peptide move (the flow then only moves
    molecules without a backbone), so its sequences count; otherwise the flow's, which the
    exporter records as ``sequences``.
    """
    backbone = metadata.get("backbone") or {}
    if backbone and float(backbone.get("weight", 0.0)) >= 1.0:
        return [str(s) for s in backbone.get("sequences", [])]
    return [str(s) for s in metadata.get("sequences", [])]


def domain_warnings(sequence: str, trained: Sequence[str], model_name: str) -> List[str]:
    """Reasons why ``sequence`` (one-letter, between the caps) lies outside the training domain.

    Parameters
    ----------
    sequence
        The peptide, e.g. ``"GM"`` for ACE-GLY-MET-NME.
    trained
        The training sequences (:func:`trained_sequences`); empty if unknown (no warning).
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
