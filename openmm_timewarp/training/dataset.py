"""Loading of pair shards (x(t), x(t+tau)) into padded tensors.

A data directory holds ``manifest.json`` and shards ``*.npz``; each shard has ``x_t`` and ``x_tau``
float32 (n_pairs, n_atoms, 3) in nm, ``elements`` (n_atoms,) str and ``metadata`` (a JSON string
with at least ``sequence``, ``temperature_K`` and ``lag_ps``). Molecules of different sizes are
padded to the largest one and carry a mask.
"""
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError


@dataclass
class PairSet:
    """Pairs of one split, padded to a common atom count.

    Attributes
    ----------
    x_t, x_tau : Tensor
        (P, N, 3) float32, nm, zero on padding.
    atom_types : Tensor
        (P, N) int64 indices into the element vocabulary, 0 on padding.
    mask : Tensor
        (P, N) float32, 1 for real atoms.
    molecule : Tensor
        (P,) int64 index into ``molecules``.
    molecules : list of dict
        Metadata of each shard's molecule (``sequence``, ``n_atoms``, ``shard``, ``directory`` and
        the shard's metadata).
    """

    x_t: Tensor
    x_tau: Tensor
    atom_types: Tensor
    mask: Tensor
    molecule: Tensor
    molecules: List[Dict]

    def __len__(self) -> int:
        return self.x_t.shape[0]

    def batch(self, index: Tensor, device: torch.device) -> Dict[str, Tensor]:
        """The pairs at ``index``, trimmed to the largest molecule among them, on ``device``."""
        mask = self.mask[index]
        atoms = int(mask.sum(1).max())
        return {
            "x_t": self.x_t[index, :atoms].to(device),
            "x_tau": self.x_tau[index, :atoms].to(device),
            "atom_types": self.atom_types[index, :atoms].to(device),
            "mask": mask[:, :atoms].to(device),
            "molecule": self.molecule[index].to(device),
        }

    def batch_indices(self, batch_size: int, generator: torch.Generator, skip: int = 0,
                      groups: Optional[Tensor] = None) -> List[Tensor]:
        """Shuffled index batches (the last partial batch is dropped), without the first ``skip``.

        With ``groups`` (P,) every batch holds pairs of one group only (a partial batch per group
        is dropped), and the batches of all groups come in random order: a batch of one molecule
        runs the internal flow once, where a mixed batch runs it once per molecule.
        """
        if groups is None:
            order = torch.randperm(len(self), generator=generator)
            batches = [order[s:s + batch_size] for s in range(0, len(self) - batch_size + 1, batch_size)]
        else:
            batches = []
            for group in torch.unique(groups).tolist():
                rows = (groups == group).nonzero().squeeze(1)
                rows = rows[torch.randperm(len(rows), generator=generator)]
                batches += [rows[s:s + batch_size] for s in range(0, len(rows) - batch_size + 1, batch_size)]
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches[skip:]


def element_types(symbols: Sequence[str], elements: Sequence[str], source) -> np.ndarray:
    """Indices of ``symbols`` into the model's ``elements``; a ValueError naming ``source`` for unknown ones."""
    unknown = sorted(set(symbols) - set(elements))
    if unknown:
        raise InputError(f"{source}: elements {unknown} are not in the model's vocabulary {list(elements)}")
    return np.array([list(elements).index(s) for s in symbols], dtype=np.int64)


MAX_NEIGHBOUR_NM = 0.5
"""In an intact molecule every atom has a covalent partner far closer than this (bonds are 0.09-0.19 nm)."""


def intact_frames(x: np.ndarray, max_neighbour_nm: float = MAX_NEIGHBOUR_NM) -> np.ndarray:
    """(P,) True for configurations (P, N, 3) that are finite and in which every atom has another
    atom within ``max_neighbour_nm``: not a blown-up integration, whose atoms fly apart."""
    finite = np.isfinite(x).all((1, 2))
    if x.shape[1] < 2:
        return finite
    intact = finite.copy()
    diagonal = np.arange(x.shape[1])
    for start in range(0, len(x), 256):  # bounded memory: 256 frames of N x N distances at a time
        chunk = np.where(finite[start:start + 256, None, None], x[start:start + 256], 0.0)
        distances = np.linalg.norm(chunk[:, :, None] - chunk[:, None], axis=-1)
        distances[:, diagonal, diagonal] = np.inf
        intact[start:start + 256] &= (distances.min(2) < max_neighbour_nm).all(1)
    return intact


def load_pairs(directory: Union[Path, Sequence[Path]], elements: Sequence[str], val_fraction: float,
               align: bool = True) -> Dict[str, PairSet]:
    """Load every shard in ``directory`` (or in each of several) and split each into train and validation pairs.

    The validation pairs are the last ``val_fraction`` of each shard, so that (time-correlated)
    neighbours of a validation pair are rarely in the training set. Pairs with a frame that is not
    intact (:func:`intact_frames`: a blown-up MD run) are dropped with a warning naming the shard.

    With ``align``, each x(t+tau) is rigidly rotated onto its x(t) (:func:`align_rotation`). The
    Boltzmann distribution does not change under rotation, so the learned proposal stays a valid
    (and exactly evaluated) MH proposal; it just no longer has to reproduce the tumbling of the
    whole molecule, a strongly correlated displacement that dominates the raw pairs at ps lags.

    Returns
    -------
    dict
        ``{"train": PairSet, "val": PairSet}``.
    """
    # "*.tmp.npz" are shards still being written by the data generator.
    directories = [Path(directory)] if isinstance(directory, (str, Path)) else [Path(d) for d in directory]
    paths = []
    for folder in directories:
        found = sorted(p for p in folder.glob("*.npz") if not p.name.endswith(".tmp.npz"))
        if not found:
            raise FileNotFoundError(f"no *.npz pair shards in {folder}")
        paths += found
    parts: Dict[str, List] = {"train": [], "val": []}
    molecules = []
    for molecule_id, path in enumerate(paths):
        with np.load(path, allow_pickle=False) as shard:
            x_t, x_tau = shard["x_t"].astype(np.float32), shard["x_tau"].astype(np.float32)
            symbols = [str(s) for s in shard["elements"]]
            metadata = json.loads(str(shard["metadata"]))
        types = element_types(symbols, elements, path)
        if x_t.shape != x_tau.shape or x_t.shape[1:] != (len(symbols), 3):
            raise InputError(f"{path}: x_t {x_t.shape}, x_tau {x_tau.shape} and {len(symbols)} elements disagree")
        intact = intact_frames(x_t) & intact_frames(x_tau)
        if not intact.all():
            warnings.warn(f"{path}: {int((~intact).sum())} of {len(intact)} pairs dropped: a frame is not finite or "
                          f"has an atom without a neighbour within {MAX_NEIGHBOUR_NM} nm (MD that blew up)")
            x_t, x_tau = x_t[intact], x_tau[intact]
        if align:
            x_tau = align_rotation(x_tau, x_t)
        # ``directory``: a shard's system_xml path is relative to its folder.
        molecules.append(dict(metadata, shard=path.name, directory=str(path.parent), n_atoms=len(symbols),
                              elements=symbols))
        n_val = int(round(val_fraction * len(x_t)))
        cut = len(x_t) - n_val
        parts["train"].append((x_t[:cut], x_tau[:cut], types, molecule_id))
        parts["val"].append((x_t[cut:], x_tau[cut:], types, molecule_id))
    width = max(m["n_atoms"] for m in molecules)
    return {split: _pad(chunks, width, molecules) for split, chunks in parts.items()}


def _pad(chunks: List, width: int, molecules: List[Dict]) -> PairSet:
    total = sum(len(c[0]) for c in chunks)
    x_t = torch.zeros(total, width, 3)
    x_tau = torch.zeros(total, width, 3)
    types = torch.zeros(total, width, dtype=torch.int64)
    mask = torch.zeros(total, width)
    molecule = torch.zeros(total, dtype=torch.int64)
    row = 0
    for a, b, t, molecule_id in chunks:
        n, atoms = len(a), len(t)
        x_t[row:row + n, :atoms] = torch.from_numpy(a)
        x_tau[row:row + n, :atoms] = torch.from_numpy(b)
        types[row:row + n, :atoms] = torch.from_numpy(t)
        mask[row:row + n, :atoms] = 1.0
        molecule[row:row + n] = molecule_id
        row += n
    return PairSet(x_t, x_tau, types, mask, molecule, molecules)


def reversed_pairs(pairs: PairSet) -> PairSet:
    """``pairs`` followed by the same pairs with x(t) and x(t+tau) swapped.

    In equilibrium, Langevin dynamics is time-reversible for the positions: (x(t), x(t+tau)) and
    (x(t+tau), x(t)) have the same joint distribution, so the reversed pairs are valid data.
    """
    return PairSet(torch.cat([pairs.x_t, pairs.x_tau]), torch.cat([pairs.x_tau, pairs.x_t]),
                   torch.cat([pairs.atom_types, pairs.atom_types]), torch.cat([pairs.mask, pairs.mask]),
                   torch.cat([pairs.molecule, pairs.molecule]), pairs.molecules)


def align_rotation(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate each ``mobile`` configuration about its centroid to best fit ``target`` (Kabsch).

    Both arrays are (P, N, 3); the centroid of ``mobile`` is kept, only its orientation changes.
    """
    mobile64, target64 = mobile.astype(np.float64), target.astype(np.float64)
    centre = mobile64.mean(1, keepdims=True)
    a, b = mobile64 - centre, target64 - target64.mean(1, keepdims=True)
    u, _, vt = np.linalg.svd(np.einsum("pni,pnj->pij", a, b))
    # Proper rotations only: flip the last singular direction where a reflection would fit better.
    sign = np.sign(np.linalg.det(np.einsum("pij,pjk->pik", u, vt)))
    u[:, :, -1] *= sign[:, None]
    rotation = np.einsum("pij,pjk->pik", u, vt)
    return (np.einsum("pni,pij->pnj", a, rotation) + centre).astype(mobile.dtype)


def random_rotations(count: int, generator: torch.Generator) -> Tensor:
    """``count`` rotation matrices (count, 3, 3), uniform (Haar) on SO(3)."""
    q, r = torch.linalg.qr(torch.randn(count, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    q[:, :, 0] *= torch.sign(torch.linalg.det(q))[:, None]
    return q.float()


def rotate_pairs(x_t: Tensor, x_tau: Tensor, mask: Tensor, rotations: Tensor) -> Tuple[Tensor, Tensor]:
    """Rotate each pair about the centre of its x(t) by the same rotation (augmentation)."""
    m = mask[..., None]
    centre = (x_t * m).sum(1, keepdim=True) / mask.sum(1)[:, None, None]
    rot = rotations.to(x_t.device).transpose(1, 2)
    return ((x_t - centre) @ rot) * m, ((x_tau - centre) @ rot) * m


def common_value(molecules: List[Dict], key: str) -> float:
    """The value of ``key`` shared by every shard's metadata; a model has one lag and one temperature."""
    values = {float(m[key]) for m in molecules}
    if len(values) != 1:
        raise InputError(f"shards disagree on {key}: {sorted(values)}")
    return values.pop()
