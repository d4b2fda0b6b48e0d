"""Which peptides a data run covers: sequences given by name, or a slice of a split file.

A split file (e.g. ``tetrapeptide_split.json``) is a JSON object with lists of one-letter
sequences under ``train`` and ``validation``; every sequence in neither list is held out and
must never get training data.  When a split is given, every sequence must belong to the chosen
subset, so a held-out sequence is refused before any MD runs.
"""

from __future__ import annotations

import json
from typing import List, Optional, Sequence

from ..errors import InputError
from ..systems import ONE_TO_THREE

__all__ = ["read_split", "select_sequences"]


def read_split(path: str, subset: str) -> List[str]:
    """The sequences of ``subset`` (``train`` or ``validation``) in split file ``path``, upper case.

    Raises
    ------
    InputError
        If the file cannot be read or has no list called ``subset``.
    """
    try:
        with open(path) as f:
            split = json.load(f)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the split file {path}: {error}") from error
    sequences = split.get(subset) if isinstance(split, dict) else None
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        raise InputError(f"{path} has no list of sequences called {subset!r}")
    return [s.upper() for s in sequences]


def select_sequences(sequences: Optional[Sequence[str]] = None, split: Optional[str] = None,
                     subset: str = "train", offset: int = 0, limit: Optional[int] = None) -> List[str]:
    """The peptides to generate data for, checked, without duplicates, in the order given.

    Parameters
    ----------
    sequences : sequence of str, optional
        One-letter sequences; with ``split``, each must be in its ``subset``.
    split : str, optional
        Path of a split file; without ``sequences``, its ``subset`` is the list to slice.
    subset : str, optional
        ``train`` (default) or ``validation``.
    offset, limit : int, optional
        Keep ``limit`` sequences (all by default) from position ``offset`` on, after checking.

    Raises
    ------
    InputError
        If neither ``sequences`` nor ``split`` is given, a sequence holds an unknown residue
        letter, a sequence is not in the split's subset, or the slice is empty.
    """
    if not sequences and not split:
        raise InputError("give sequences or a split file")
    if offset < 0 or (limit is not None and limit < 1):
        raise InputError(f"offset must be at least 0 and limit at least 1 (got {offset} and {limit})")
    allowed = read_split(split, subset) if split else None
    chosen = [s.strip().upper() for s in sequences] if sequences else list(allowed)
    for sequence in chosen:
        unknown = sorted(set(sequence) - set(ONE_TO_THREE))
        if not sequence or unknown:
            raise InputError(f"{sequence!r} is not a peptide sequence: unknown one-letter code(s) "
                             f"{unknown}; known: {''.join(sorted(ONE_TO_THREE))}")
    if allowed is not None:
        outside = [s for s in chosen if s not in set(allowed)]
        if outside:
            raise InputError(f"{', '.join(outside)} not in the {subset!r} list of {split}; data is "
                             "only generated for that list (other sequences may be held out)")
    unique = list(dict.fromkeys(chosen))
    selected = unique[offset:offset + limit if limit is not None else None]
    if not selected:
        raise InputError(f"offset {offset} and limit {limit} select none of {len(unique)} sequences")
    return selected
