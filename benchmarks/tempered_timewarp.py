"""Timewarp inside replica exchange against plain Timewarp, in one run, keeping every step of the 310 K replica.

Both run for ``--seconds`` on one core from the same start, model loading included; replica
exchange uses OpenMM's ``ReplicaExchangeSampler`` with a ladder sized on the System Timewarp samples
(``temperature_ladder``), and its samples are the conformations after every step of the replica
that holds 310 K (``every_step``). Reported per method: ESS per second (the minimum over every
observable, and without basin indicators), the JSD per residue to the reference, and replica
exchange's round trips. TICA is fitted on the reference runs' frames, as in
``tetrapeptide_validation.py``; the basins are those of the reference above ``--min-population``.

    OPENMM_CPU_THREADS=1 python -u benchmarks/tempered_timewarp.py --sequence CHRN \\
        --references runs/reference/g4 --reference-runs runs/reference --json tempered.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import openmm as mm
import torch

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import (TEMPERATURE, evaluate_run, required_basins, timewarp_remd_run, timewarp_run,
                                          timewarp_temperature_ladder)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tetrapeptide_validation import reference_path, tica_from_reference_runs  # noqa: E402  (a sibling script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="CHRN")
    parser.add_argument("--model", default="dipeptides-compiled")
    parser.add_argument("--references", help="folder of reference .npz files (default: the shipped ones)")
    parser.add_argument("--reference-runs", help="folder of make-reference run folders to fit TICA on")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--t-max", type=float, default=450.0)
    parser.add_argument("--exchange", type=float, default=0.3, help="target neighbour exchange probability")
    parser.add_argument("--steps", type=int, default=20, help="Timewarp steps per replica and iteration")
    parser.add_argument("--min-population", type=float, default=1e-3)
    parser.add_argument("--platform", default="Reference")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference = analysis.load_reference(reference_path(args.sequence, args.references))
    basins = required_basins(reference, args.min_population)
    topology, positions = systems.peptide_from_sequence(args.sequence, seed=args.seed)
    system = systems.create_system(topology)
    platform = mm.Platform.getPlatformByName(args.platform)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
    ladder = timewarp_temperature_ladder(topology, start, platform, args.t_max, args.exchange, args.seed)
    print(f"{args.sequence}: ladder {', '.join(f'{t:.0f}' for t in ladder)} K, {args.steps} steps per replica "
          f"and iteration", flush=True)
    runs = {"timewarp": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, hmc_interval=None,
                                     platform=platform),
            "timewarp-remd": timewarp_remd_run(args.model, topology, system, start, args.seconds, args.seed, ladder,
                                               args.steps, platform, every_step=True)}
    tica = tica_from_reference_runs(args.sequence, args.reference_runs)
    if tica is None:
        parser.error("TICA needs --reference-runs (make-reference run folders of the peptide)")
    rows = {}
    for name, run in runs.items():
        result = evaluate_run(run, topology, reference, tica, basins)
        smooth = result["smooth_ess_per_second"]
        rows[name] = {"frames": len(run["frames"]), "ess_per_second": result["ess_per_second"],
                      "smooth_ess_per_second": smooth, "jsd": result["jsd"], "acceptance": run["acceptance"],
                      **{k: run[k] for k in ("iterations", "round_trips", "state0_changes") if k in run}}
        print(f"{name}: {len(run['frames'])} frames, acceptance {run['acceptance']:.3f}; ESS/s {result['ess_per_second']:.4f}"
              f", without basin indicators {smooth:.4f}; JSD per residue "
              + " ".join(f"{j:.4f}" for j in result["jsd"])
              + (f"; {run['iterations']} iterations, {run['round_trips']} round trips" if "iterations" in run else ""),
              flush=True)
    t, r = rows["timewarp"], rows["timewarp-remd"]
    print(f"replica exchange / plain: ESS/s {r['ess_per_second'] / max(t['ess_per_second'], 1e-12):.2f}x, "
          f"without basin indicators {r['smooth_ess_per_second'] / t['smooth_ess_per_second']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sequence": args.sequence, "ladder_K": ladder, "rows": rows}, f, indent=1, default=float)


if __name__ == "__main__":
    main()
