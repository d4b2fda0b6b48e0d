"""MD training data: the on-disk format of (x(t), x(t + tau)) pairs.

Generation lives in :mod:`openmm_timewarp.data.generate` (``python -m
openmm_timewarp.data.generate --help``); it is not imported here so that running it as a
module stays clean.
"""

from .storage import is_complete, iter_shards, load_pairs, pairs_from_frames, read_shard, write_manifest

__all__ = ["is_complete", "iter_shards", "load_pairs", "pairs_from_frames", "read_shard",
           "write_manifest"]
