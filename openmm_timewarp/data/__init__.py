"""MD training data: the on-disk format of (x(t), x(t + tau)) pairs.

Generation lives in :mod:`openmm_timewarp.data.generate` (the command line:
``openmm-timewarp generate-data``); it needs OpenMM and is not imported here.
"""

from .storage import is_complete, iter_shards, load_pairs, pairs_from_frames, read_shard, write_manifest

__all__ = ["is_complete", "iter_shards", "load_pairs", "pairs_from_frames", "read_shard",
           "write_manifest"]
