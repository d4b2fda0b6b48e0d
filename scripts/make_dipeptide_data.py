"""MD frames of capped dipeptides from the train split, for the transferable backbone density.

Which dipeptides (a fixed rule, so that the choice is not tuned): every ``--stride``-th sequence of
the split's ``train`` list in its order, then, for each amino acid that none of those contains, the
first train sequence that does. Only ``train`` sequences are ever used; the validation and held-out
sequences are never touched.

They run in :func:`coverage_order`, and ``--count N`` keeps the first N of it (the shipped
``dipeptides`` model used 14, which cover all 20 amino acids). Each dipeptide gets 7 short
trajectories (``--trajectory-ns``), each started in another basin (the generator's restrained
starts), so that the frames cover every basin, rare ones included.

    python scripts/make_dipeptide_data.py --split ../shared/data/dipeptide_split.json --out data/dipeptides

All trajectories of all chosen dipeptides run as one pool of Dask tasks (``generate-data``: a
local cluster, or ``--scheduler ADDRESS``). Resumable: complete trajectories are skipped; a
dipeptide whose MD fails is reported and the others still run. Writes one data folder per
sequence and ``OUT/sequences.json`` (the rule, the chosen sequences and those that failed).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import List

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"


def choose(train: List[str], stride: int) -> List[str]:
    """Every ``stride``-th train sequence, then the first one containing each amino acid still missing."""
    chosen = train[::stride]
    for amino_acid in AMINO_ACIDS:
        if not any(amino_acid in s for s in chosen):
            chosen.append(next(s for s in train if amino_acid in s))
    return chosen


def coverage_order(sequences: List[str]) -> List[str]:
    """The same sequences, each next one adding the most amino acids not yet covered (ties: list
    order), so that a run cut short still covers as many residues as it can."""
    remaining, covered, ordered = list(sequences), set(), []
    while remaining:
        best = max(remaining, key=lambda s: len(set(s) - covered))  # max keeps the first of ties
        ordered.append(best)
        covered |= set(best)
        remaining.remove(best)
    return ordered


def _n_pairs(folder: Path) -> int:
    """Pairs recorded in a data folder's manifest (0 without one)."""
    manifest = folder / "manifest.json"
    return json.loads(manifest.read_text())["n_pairs"] if manifest.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", type=Path, required=True, help="dipeptide_split.json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--stride", type=int, default=10)
    parser.add_argument("--count", type=int, help="only the first COUNT sequences of the coverage order")
    parser.add_argument("--trajectory-ns", type=float, default=0.3)
    parser.add_argument("--workers", type=int, help="local Dask worker processes (default: one per core)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    train = json.loads(args.split.read_text())["train"]
    sequences = coverage_order(choose(train, args.stride))[:args.count]
    args.out.mkdir(parents=True, exist_ok=True)
    frames_per_trajectory = round(args.trajectory_ns * 1000 / 5)
    pairs = 7 * (frames_per_trajectory + 1 - 20)  # frames every 5 ps, lag 100 ps: 7 trajectories
    # One command for all of them: their trajectories form one pool of Dask tasks, written to
    # OUT/SEQUENCE; --split makes the generator refuse any sequence outside the train list.
    command = [sys.executable, "-m", "openmm_timewarp.cli", "generate-data", "--sequence", *sequences,
               "--split", str(args.split), "--subset", "train", "--lag-ps", "100", "--frame-ps", "5",
               "--trajectory-ns", str(args.trajectory_ns), "--pairs", str(pairs), "--out", str(args.out),
               "--seed", str(args.seed), "--no-progress"]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.scheduler:
        command += ["--scheduler", args.scheduler]
    subprocess.run(command)  # a failed trajectory is reported by the generator; the others still run
    failed = [s for s in sequences if _n_pairs(args.out / s) < pairs]
    (args.out / "sequences.json").write_text(json.dumps({
        "rule": f"every {args.stride}th train sequence of {args.split.name}, then the first train sequence "
                "containing each amino acid still missing", "sequences": sequences, "failed": failed}, indent=1))
    print(f"done; failed: {', '.join(failed) or 'none'}")


if __name__ == "__main__":
    main()
