"""MD training data: the on-disk format of (x(t), x(t + tau)) pairs.

Generation lives in :mod:`openmm_timewarp.data.generate` (the command line:
``openmm-timewarp generate-data``); it needs OpenMM and is not imported here.  Its trajectories
run as Dask tasks (:mod:`openmm_timewarp.data.cluster`): a local cluster by default, or
``--scheduler ADDRESS`` for a running ``dask scheduler`` with ``dask worker`` processes; which
peptides a run covers comes from :mod:`openmm_timewarp.data.split`.  How to run it locally and on a
cluster, with a measured throughput: ``docs/data-generation.md``.
"""

from .storage import is_complete, iter_shards, load_pairs, pairs_from_frames, read_shard, write_manifest

__all__ = ["is_complete", "iter_shards", "load_pairs", "pairs_from_frames", "read_shard",
           "write_manifest"]
