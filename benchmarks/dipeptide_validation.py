"""A transferable model on the validation dipeptides, each against plain MD on the same System in one run.

For every capped dipeptide ACE-X-Y-NME that has a reference (``openmm-timewarp make-reference``; by
default the ``validation`` sequences of the split that have one shipped), at equal wall time:

* ``md``: ``LangevinMiddleIntegrator`` on the System the model samples (no constraints, 1 fs);
* ``md-hmr``: what a user would run: HBonds constraints, hydrogen mass 4 amu, 4 fs;

both for ``--md-seconds``, longer than the Timewarp budget ``--seconds`` so that MD's time to
visit every basin is measured more often than bounded (ESS is per second, so the budgets compare
fairly, and equal MD budgets keep the missed-basin bound the same for both);
* ``timewarp``: ``TimewarpIntegrator`` with Metropolis-Hastings;
* ``explore``: ``TimewarpIntegrator`` in exploration mode, stopped once it has visited every basin
  the reference has (population at least ``--min-population`` in any residue).

Reported per peptide: acceptance; ESS per second (minimum over sin/cos of every phi and psi, the
basin indicators of the reference's basins capped at one sample per entry, and the first TICA
component fitted on the ``md`` run) and its ratio to the stronger MD baseline (a lower bound, marked
``>=``, when neither MD run entered every basin: three entries, a 95% Poisson bound, are credited
for each basin MD missed);
the JSD of every residue's 36 x 36 (phi, psi) histogram to the reference; and the wall time until
every reference basin was visited, exploration against MD (a lower bound when MD never visited them
all).  Then the medians, against the goals of issue 4 (ESS/s ratio >= 5, every JSD <= 0.03,
exploration >= 50x).

    python benchmarks/dipeptide_validation.py --model dipeptides --json results.json
"""
from __future__ import annotations

import argparse
import json
import math
import os
from typing import Dict, List

import numpy as np
import torch

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import (TEMPERATURE, basin_labels, bound, evaluate_run, fastest_platform,
                                          first_visit_all, indicator_name, md_run,
                                          required_basins, strongest_baseline, timewarp_run)
from openmm_timewarp.model_file import DEFAULT_MODEL

SPLIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                     "dipeptide_split.json")
TICA_LAG_FRAMES = 10


def benchmark_peptide(sequence: str, args: argparse.Namespace) -> Dict:
    """All four methods on one peptide; returns the measured numbers."""
    reference = analysis.load_reference(analysis.reference_name(sequence))
    basins = required_basins(reference, args.min_population)
    topology, positions = systems.peptide_from_sequence(sequence, seed=args.seed)
    system = systems.create_system(topology)
    platform = fastest_platform(system, positions)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)

    def explored(frames: np.ndarray) -> bool:
        return first_visit_all(basin_labels(frames, topology), basins) is not None

    runs = {
        "md": md_run(topology, start, args.md_seconds, 1.0, args.frame_ps, platform, args.seed, False),
        "md-hmr": md_run(topology, start, args.md_seconds, 4.0, args.frame_ps, platform, args.seed, True),
        "timewarp": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, hmc_interval=None),
        "explore": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, explore=True,
                                hmc_interval=None, stop=explored),
    }
    phi_md, psi_md = analysis.backbone_dihedrals(runs["md"]["frames"], topology)
    if len(phi_md) < 4 * TICA_LAG_FRAMES:
        raise SystemExit(f"{sequence}: the md run saved {len(phi_md)} frames, too few for TICA at a lag of "
                         f"{TICA_LAG_FRAMES} frames; raise --md-seconds or lower --frame-ps")
    tica_model = analysis.fit_tica(analysis.dihedral_features(phi_md, psi_md), lagtime=TICA_LAG_FRAMES)
    results = {name: evaluate_run(run, topology, reference, tica_model, basins) for name, run in runs.items()}
    n_res = len(reference.histograms)
    required = [indicator_name(r, b, n_res) for r, b in basins]
    _, baseline, lower = strongest_baseline({m: results[m] for m in ("md", "md-hmr")},
                                            {m: runs[m]["seconds"] for m in ("md", "md-hmr")}, required)
    tw = results["timewarp"]["ess_per_second"]
    md_visits = [results[m]["all_basins_seconds"] for m in ("md", "md-hmr") if results[m]["all_basins_seconds"]]
    explore_time = results["explore"]["all_basins_seconds"]
    if explore_time is None:
        exploration = (None, False)
    elif md_visits:
        exploration = (min(md_visits) / explore_time, False)
    else:  # MD never visited them all within its budgets: the ratio is at least budget / explore time
        exploration = (max(runs[m]["seconds"] for m in ("md", "md-hmr")) / explore_time, True)
    phi_tw, psi_tw = analysis.backbone_dihedrals(runs["timewarp"]["frames"], topology)
    return {
        "sequence": sequence,
        "dihedrals_deg": (phi_tw.astype(np.float32), psi_tw.astype(np.float32)),
        "basins": [f"{b}:{r}" for r, b in basins],
        "acceptance": runs["timewarp"]["acceptance"],
        "hmc_acceptance": runs["timewarp"]["hmc_acceptance"],
        "steps": runs["timewarp"]["proposals"],
        "ess_per_second": {m: r["ess_per_second"] for m, r in results.items()},
        "ess_ratio": tw / baseline,
        # A basin Timewarp never entered makes its ESS 0: the ratio is then 0, not a bound.
        "ess_ratio_lower_bound": lower and tw > 0,
        "timewarp_missed": [name for name in required if results["timewarp"]["ess"][name] == 0],
        "jsd": results["timewarp"]["jsd"],
        "jsd_md": {m: results[m]["jsd"] for m in ("md", "md-hmr")},
        "reference_jsd_between_halves": reference.metadata.get("jsd_between_halves"),
        "explore_seconds": explore_time,
        "md_all_basins_seconds": min(md_visits) if md_visits else None,
        "exploration_ratio": exploration[0],
        "exploration_ratio_lower_bound": exploration[1],
        "simulated_ns": {m: runs[m]["simulated_ns"] for m in ("md", "md-hmr")},
        "ess": {m: r["ess"] for m, r in results.items()},
    }


def validation_sequences(split: str) -> List[str]:
    """The split's validation sequences that have a shipped reference."""
    with open(split) as f:
        validation = json.load(f)["validation"]
    available = set(os.listdir(analysis.REFERENCE_DIR))
    return [s for s in validation if analysis.reference_name(s) + ".npz" in available]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped model name")
    parser.add_argument("--sequences", nargs="+", help="dipeptides (default: validation ones with a reference)")
    parser.add_argument("--split", default=SPLIT, help="dipeptide_split.json (for the default sequences)")
    parser.add_argument("--seconds", type=float, default=45.0, help="wall-clock budget of timewarp and explore")
    parser.add_argument("--md-seconds", type=float, default=120.0, help="wall-clock budget of each MD run")
    parser.add_argument("--frame-ps", type=float, default=1.0, help="MD frame interval")
    parser.add_argument("--min-population", type=float, default=1e-3,
                        help="reference population from which a basin must be visited")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--dihedrals", help="write the timewarp run's phi and psi (degrees) here, .npz with "
                                            "<SEQ>_phi and <SEQ>_psi: JSDs to a later reference need no rerun")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sequences = [s.upper() for s in args.sequences] if args.sequences else validation_sequences(args.split)
    if not sequences:
        parser.error("no sequences: no validation dipeptide has a reference (make them with openmm-timewarp make-reference)")
    print(f"model {args.model}; {args.seconds:.0f} s of Timewarp, {args.md_seconds:.0f} s of each MD; "
          f"{', '.join(sequences)}", flush=True)
    print(f"{'peptide':8s} {'accept':>7s} {'ESS/s TW':>9s} {'ESS/s MD':>9s} {'ratio':>8s} {'JSD res1':>8s} "
          f"{'JSD res2':>8s} {'ref JSD':>7s} {'explore s':>9s} {'MD s':>6s} {'explore x':>9s}", flush=True)
    rows, dihedrals = [], {}
    for sequence in sequences:
        row = benchmark_peptide(sequence, args)
        phi, psi = row.pop("dihedrals_deg")
        dihedrals.update({f"{sequence}_phi": phi, f"{sequence}_psi": psi})
        rows.append(row)
        md_best = max(row["ess_per_second"]["md"], row["ess_per_second"]["md-hmr"])
        jsd = row["jsd"] + [math.nan] * (2 - len(row["jsd"]))
        own = row["reference_jsd_between_halves"]
        own = max(own) if own else math.nan
        print(f"{sequence:8s} {row['acceptance']:7.3f} {row['ess_per_second']['timewarp']:9.3f} {md_best:9.3f} "
              f"{bound(row['ess_ratio'], row['ess_ratio_lower_bound']):>8s} {jsd[0]:8.4f} {jsd[1]:8.4f} {own:7.3f} "
              f"{bound(row['explore_seconds'], False):>9s} {bound(row['md_all_basins_seconds'], False):>6s} "
              f"{bound(row['exploration_ratio'], row['exploration_ratio_lower_bound']):>9s}", flush=True)
        if row["timewarp_missed"]:
            print(f"{'':8s} Timewarp with MH never entered {', '.join(row['timewarp_missed'])}", flush=True)
        if args.json:  # after every peptide, so that a long run can be read while it goes
            with open(args.json, "w") as f:
                json.dump({"model": args.model, "seconds": args.seconds, "rows": rows}, f, indent=1, default=float)
        if args.dihedrals:
            np.savez_compressed(args.dihedrals, **dihedrals)
    ratios = [r["ess_ratio"] for r in rows]
    explorations = [r["exploration_ratio"] if r["exploration_ratio"] is not None else 0.0 for r in rows]
    worst_jsd = max(max(r["jsd"]) for r in rows)
    print(f"\nmedian ESS/s ratio {np.median(ratios):.1f} (goal >= 5); largest JSD {worst_jsd:.4f} (goal <= 0.03); "
          f"median exploration ratio {np.median(explorations):.1f} (goal >= 50); median acceptance "
          f"{np.median([r['acceptance'] for r in rows]):.3f}")
    print("ratios marked >= are lower bounds: MD did not visit every reference basin in its budget; 'ref JSD' is the "
          "reference's own noise (JSD between its two halves, largest residue): JSDs below it cannot be resolved")


if __name__ == "__main__":
    main()
