"""Soak run: ``sample`` on a capped tetrapeptide for N minutes, watching memory and file descriptors.

Every minute (``--every``) a thread records the process's resident memory (``VmRSS`` of
``/proc/self/status``), its open file descriptors (``/proc/self/fd``) and the frames written so
far.  After N minutes the benchmark stops the run the way a user would, with SIGINT, which also
exercises the interrupted-run path, and then checks that the folder is consistent: frames in the
DCD = rows in the log = frames in the summary, the steps done = the proposals counted, the
summary's populations = those recomputed from the trajectory, and the checkpoint names the same
progress.  Pass criteria (issue 21): RSS growth after the first minute under 5%, no descriptor growth.

    python benchmarks/soak.py --minutes 60            # the soak (an hour)
    python benchmarks/soak.py --minutes 3 --every 30  # a short check that it works
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import threading
import time
from typing import List, Tuple

from openmm import app


def rss_mb() -> float:
    """Resident memory of this process, MiB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024.0


def open_fds() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def log_rows(folder: str) -> int:
    try:
        with open(os.path.join(folder, "log.csv")) as f:
            return sum(1 for _ in f) - 1
    except FileNotFoundError:
        return 0


def watch(folder: str, every_s: float, stop: threading.Event, samples: List[Tuple[float, float, int, int]]) -> None:
    """Append (elapsed s, RSS MiB, open fds, log rows) every ``every_s`` seconds until ``stop``.

    Only while the chain runs: writing the plots at the end loads matplotlib, which is not growth.
    """
    began = time.monotonic()
    while not stop.wait(every_s):
        samples.append((time.monotonic() - began, rss_mb(), open_fds(), log_rows(folder)))


def check_folder(folder: str) -> List[str]:
    """Inconsistencies between a stopped run's files (empty if none)."""
    from openmm_timewarp.run import load_run
    from openmm_timewarp.run.checkpoint import read_checkpoint
    from openmm_timewarp.run.results import residue_dihedrals, residue_populations

    summary, trajectory = load_run(folder)
    checkpoint = read_checkpoint(folder)
    problems = []
    counts = dict(dcd=trajectory.n_frames, log=log_rows(folder), summary=summary["n_frames"],
                  checkpoint=checkpoint.n_frames)
    if len(set(counts.values())) != 1:
        problems.append(f"frame counts differ: {counts}")
    if summary["num_proposed"] != summary["steps_done"] or checkpoint.step != summary["steps_done"]:
        problems.append(f"steps: {summary['steps_done']} done, {summary['num_proposed']} proposed, "
                        f"checkpoint at {checkpoint.step}")
    _, phi, psi = residue_dihedrals(trajectory)
    recomputed = residue_populations(phi, psi)
    for stored, fresh in zip(summary["populations"], recomputed):
        for name, (p, _) in fresh.items():
            if abs(stored[name][0] - p) > 1e-6:
                problems.append(f"population {name}: summary {stored[name][0]:.6f}, trajectory {p:.6f}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the run (default 60)")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples (default 60)")
    # ERLM is a validation tetrapeptide of ../shared/data/tetrapeptide_split.json (the held-out ones stay untouched).
    parser.add_argument("--sequence", default="ERLM", help="peptide between the caps (default ERLM)")
    parser.add_argument("--model", default="dipeptides", help="model (default dipeptides)")
    parser.add_argument("--out", help="run folder (default: a temporary folder, removed afterwards)")
    args = parser.parse_args()

    import torch

    from openmm_timewarp import systems
    from openmm_timewarp.run import sample

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        pdb = os.path.join(tmp, f"ace-{args.sequence.lower()}-nme.pdb")
        with open(pdb, "w") as f:
            app.PDBFile.writeFile(*systems.peptide_from_sequence(args.sequence), f)
        folder = args.out or os.path.join(tmp, "soak")
        samples: List[Tuple[float, float, int, int]] = []
        stop = threading.Event()
        watcher = threading.Thread(target=watch, args=(folder, args.every, stop, samples), daemon=True)

        # SIGINT after the soak time: the run stops itself cleanly, as it would for Ctrl-C. A shell
        # starts background jobs (``nohup ... &``) with SIGINT ignored, and the run leaves an ignored
        # signal ignored: SIGTERM then, which stops it the same way.
        signum = signal.SIGTERM if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else signal.SIGINT

        def interrupt() -> None:
            stop.set()
            os.kill(os.getpid(), signum)

        # Half a sampling interval late, so that the last sample is taken while the chain still runs.
        timer = threading.Timer(args.minutes * 60.0 + args.every / 2, interrupt)
        watcher.start()
        timer.start()
        began = time.monotonic()
        result = sample(pdb, model=args.model, steps=10**9, frame_every=100, out=folder, seed=1,
                        checkpoint_every_s=300.0)
        stop.set()
        timer.cancel()
        elapsed = time.monotonic() - began
        problems = check_folder(folder)
        report(samples, result, elapsed, problems)
    return 1 if problems else 0


def report(samples, result, elapsed: float, problems: List[str]) -> None:
    """Print the table of samples, the growth after the first sample, and the consistency checks."""
    print(f"{'elapsed (s)':>12s} {'RSS (MiB)':>10s} {'open fds':>9s} {'frames':>8s}")
    for t, rss, fds, frames in samples:
        print(f"{t:12.0f} {rss:10.1f} {fds:9d} {frames:8d}")
    settled = [s for s in samples if s[0] >= 60.0 - 1.0] or samples  # from the end of the first minute
    if len(settled) >= 2:
        first, last = settled[0], settled[-1]
        growth = 100.0 * (last[1] - first[1]) / first[1]
        print(f"RSS growth after the first minute: {growth:+.2f}% (limit 5%); open fds {first[2]} -> {last[2]}")
    print(f"{result.summary['steps_done']} steps, {result.trajectory.n_frames} frames in {elapsed:.0f} s, "
          f"acceptance {result.acceptance:.3f}, status {result.summary['status']}")
    print("consistent: frames, log rows, summary, checkpoint and populations agree" if not problems
          else "INCONSISTENT:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    sys.exit(main())
