"""On-disk format of MD training data: one compressed ``.npz`` shard per trajectory.

Each shard holds

- ``x_t``, ``x_tau``: float32 (n_pairs, n_atoms, 3), nm: pairs (x(t), x(t + tau));
- ``frames``: float32 (n_frames, n_atoms, 3), nm: the whole trajectory, saved every
  ``frame_interval_ps``, so that pairs at any multiple of that interval can be rebuilt
  (:func:`pairs_from_frames`), e.g. for a multi-lag model;
- ``elements``: (n_atoms,) str; ``metadata``: a JSON string (settings, seeds, start, timing,
  ``n_pairs``, ``n_frames``, ``lag_frames``, and ``topology_pdb``, the first frame as PDB
  text, to rebuild the Topology).

The folder also holds ``manifest.json``: the common settings and one entry per shard.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, Iterator, List, Tuple

import numpy as np

__all__ = ["shard_path", "write_shard", "read_shard", "is_complete", "pairs_from_frames",
           "write_manifest", "load_pairs", "iter_shards"]


def shard_path(folder: str, trajectory: int) -> str:
    """Path of the shard of trajectory number ``trajectory``."""
    return os.path.join(folder, f"traj_{trajectory:05d}.npz")


def pairs_from_frames(frames: np.ndarray, lag_frames: int) -> Tuple[np.ndarray, np.ndarray]:
    """All pairs (frames[i], frames[i + lag_frames]) of one trajectory."""
    if lag_frames < 1 or lag_frames >= len(frames):
        raise ValueError(f"lag of {lag_frames} frames does not fit {len(frames)} frames")
    return frames[:-lag_frames], frames[lag_frames:]


def write_shard(path: str, frames: np.ndarray, lag_frames: int, elements: List[str],
                metadata: Dict) -> int:
    """Write one trajectory's shard atomically (temporary file, then rename).

    Returns
    -------
    int
        The number of pairs written.
    """
    frames = np.asarray(frames, dtype=np.float32)
    x_t, x_tau = pairs_from_frames(frames, lag_frames)
    metadata = dict(metadata, n_pairs=len(x_t), n_frames=len(frames), lag_frames=lag_frames)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, x_t=x_t, x_tau=x_tau, frames=frames, elements=np.array(elements),
                        metadata=json.dumps(metadata))
    os.replace(tmp, path)
    return len(x_t)


def read_shard(path: str) -> Dict:
    """Load a shard into memory: arrays plus the decoded ``metadata`` dict."""
    with np.load(path) as data:
        shard = {key: data[key] for key in data.files if key != "metadata"}
        shard["metadata"] = json.loads(str(data["metadata"]))
    return shard


def is_complete(path: str) -> bool:
    """Whether a shard exists and can be read (a finished trajectory, for resuming)."""
    try:
        with np.load(path) as data:
            return {"x_t", "x_tau", "elements", "metadata"} <= set(data.files)
    except (OSError, ValueError, EOFError):
        return False


def iter_shards(folder: str) -> Iterator[str]:
    """Paths of the complete shards of a folder, in trajectory order."""
    for path in sorted(glob.glob(os.path.join(folder, "traj_*.npz"))):
        if not path.endswith(".tmp.npz") and is_complete(path):
            yield path


def write_manifest(folder: str, settings: Dict) -> Dict:
    """(Re)write ``manifest.json`` from the shards present; returns the manifest."""
    entries = []
    for path in iter_shards(folder):
        with np.load(path) as data:  # reads only the small metadata entry
            meta = json.loads(str(data["metadata"]))
        entries.append({"file": os.path.basename(path), "trajectory": meta["trajectory"],
                        "n_pairs": meta["n_pairs"], "n_frames": meta["n_frames"],
                        "seed": meta["trajectory_seed"], "start": meta["start"],
                        "seconds": meta["seconds"]})
    manifest = dict(settings)
    manifest.update({"n_trajectories": len(entries), "n_pairs": sum(e["n_pairs"] for e in entries),
                     "shards": entries})
    tmp = os.path.join(folder, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(folder, "manifest.json"))
    return manifest


def load_pairs(folder: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Dict]:
    """Concatenate the pairs of every complete shard of a folder.

    Returns
    -------
    x_t, x_tau : numpy.ndarray
        float32 (n_pairs, n_atoms, 3), nm.
    elements : numpy.ndarray
        (n_atoms,) element symbols.
    metadata : dict
        The metadata of the first shard (settings are common to all shards).
    """
    x_t, x_tau, elements, metadata = [], [], None, None
    for path in iter_shards(folder):
        shard = read_shard(path)
        x_t.append(shard["x_t"])
        x_tau.append(shard["x_tau"])
        if elements is None:
            elements, metadata = shard["elements"], shard["metadata"]
    if not x_t:
        raise FileNotFoundError(f"no complete shards in {folder}")
    return np.concatenate(x_t), np.concatenate(x_tau), elements, metadata
