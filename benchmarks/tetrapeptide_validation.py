"""A model on validation tetrapeptides against the strongest of three baselines (issue 20), in one run.

For every capped peptide given (by default the ``validation`` tetrapeptides of
``tetrapeptide_split.json`` whose reference is in ``--references``), on the same cores and on the
platform (Reference or CPU; set ``OPENMM_CPU_THREADS=1`` for one core) that runs this System's MD
faster:

* ``md``: ``LangevinMiddleIntegrator`` on the System the model samples (no constraints, 1 fs);
* ``md-hmr``: what a user would run: HBonds constraints, hydrogen mass 4 amu, 4 fs;
* ``remd``: temperature replica exchange (``openmm.app.ReplicaExchangeSampler``) with those MD
  settings; the ladder is geometric from 310 K to ``--t-max``, with as many replicas as a 50 ps
  pilot's energy fluctuation asks for to exchange neighbours at ``--exchange`` (see
  ``benchmarking.temperature_ladder``); every replica's time is on the clock, and the samples are
  the 310 K state's;

each for ``--baseline-seconds``, and

* ``timewarp``: ``TimewarpIntegrator`` with Metropolis-Hastings for ``--seconds`` (model loading included);
* ``explore``: the same in exploration mode, stopped once it has visited every basin of the reference.

Reported per peptide, against the strongest baseline for each number: ESS per second (minimum over
sin/cos of every phi and psi, the basin indicators of the reference's basins and TICA-1); a baseline
that never entered a basin is credited three entries in its time (a 95% Poisson bound), and the
ratio against it is then marked ``>=``.  TICA is fitted on the reference run's own frames when
``--reference-runs`` holds them (``make-reference``'s run folder), else on the three baselines' frames
pooled, and never on the Timewarp run.  Also: the JSD of every residue's (phi, psi) histogram to the
reference, with the reference's own half-vs-half JSD beside it; and the wall time until every basin
of the reference was visited, exploration against the fastest baseline.  Then the medians, against
the goals of issue 20 (ESS/s ratio >= 10, every JSD <= 0.03, exploration >= 100x).

    python -u benchmarks/tetrapeptide_validation.py --sequences CHRN IELT --references runs/reference \\
        --reference-runs runs/reference --json tetra.json --dihedrals tetra-dihedrals.npz
    python benchmarks/tetrapeptide_validation.py --rescore tetra-dihedrals.npz --references runs/reference
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
from typing import Dict, List, Optional

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import (TEMPERATURE, USER_PRACTICE, basin_labels, bound, evaluate_run,
                                          fastest_platform, first_visit_all, indicator_name, md_run, remd_run,
                                          required_basins, strongest_baseline, temperature_ladder,
                                          timewarp_remd_run, timewarp_run, timewarp_temperature_ladder)
from openmm_timewarp.model_file import DEFAULT_MODEL
from openmm_timewarp.reference.production import load_production

SPLIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data",
                     "tetrapeptide_split.json")
BASELINES = ("md", "md-hmr", "remd")
TICA_LAG_FRAMES = 10


def reference_path(sequence: str, references: Optional[str]) -> str:
    """The reference file of ``sequence``: ``<references>/<name>.npz`` or ``<references>/<SEQUENCE>.npz``
    (what ``make-reference --out DIR/SEQUENCE.npz`` writes), else the shipped one."""
    name = analysis.reference_name(sequence)
    if references:
        for candidate in (f"{name}.npz", f"{sequence}.npz"):
            if os.path.exists(os.path.join(references, candidate)):
                return os.path.join(references, candidate)
    return name


def tica_from_reference_runs(sequence: str, runs: Optional[str]):
    """TICA-1 fitted on the phi/psi frames of ``make-reference``'s run folders of ``sequence`` (each
    run folder is one trajectory, 0.5 ps frames), or None if there are none."""
    if not runs:
        return None
    features = []
    for work in sorted(glob.glob(os.path.join(runs, analysis.reference_name(sequence) + "*"))):
        phi, psi, _, chunks = load_production(work, TEMPERATURE.value_in_unit(unit.kelvin))
        if chunks:
            features.append(analysis.dihedral_features(phi, psi))
    if not features:
        return None
    return analysis.fit_tica(features, lagtime=TICA_LAG_FRAMES)


def benchmark_peptide(sequence: str, args: argparse.Namespace) -> Dict:
    """Every method on one peptide; returns the measured numbers."""
    reference = analysis.load_reference(reference_path(sequence, args.references))
    basins = required_basins(reference, args.min_population)
    topology, positions = systems.peptide_from_sequence(sequence, seed=args.seed)
    system = systems.create_system(topology)
    platform = (mm.Platform.getPlatformByName(args.platform) if args.platform else fastest_platform(system, positions))
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
    ladder = temperature_ladder(systems.create_system(topology, **USER_PRACTICE), start, platform, args.t_max,
                                args.exchange, seed=args.seed)
    print(f"{sequence}: {platform.getName()} platform; replica exchange ladder "
          f"{', '.join(f'{t:.0f}' for t in ladder)} K", flush=True)

    def explored(frames: np.ndarray) -> bool:
        return first_visit_all(basin_labels(frames, topology), basins) is not None

    tempered = {}
    if args.timewarp_remd:
        tempered["ladder"] = timewarp_temperature_ladder(topology, start, platform, args.t_max, args.exchange, args.seed)
        print(f"  Timewarp replica exchange ladder {', '.join(f'{t:.0f}' for t in tempered['ladder'])} K, "
              f"{args.timewarp_remd} steps per replica and iteration", flush=True)
    runs = {
        "md": md_run(topology, start, args.baseline_seconds, 1.0, args.frame_ps, platform, args.seed, False),
        "md-hmr": md_run(topology, start, args.baseline_seconds, 4.0, args.frame_ps, platform, args.seed, True),
        "remd": remd_run(topology, start, args.baseline_seconds, args.frame_ps, platform, args.seed, ladder),
        "timewarp": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, hmc_interval=None,
                                 platform=platform),
        "explore": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, explore=True,
                                hmc_interval=None, stop=explored, platform=platform),
    }
    if args.timewarp_remd:
        runs["timewarp-remd"] = timewarp_remd_run(args.model, topology, system, start, args.seconds, args.seed,
                                                  tempered["ladder"], args.timewarp_remd, platform,
                                                  every_step=args.every_step)
    tica_model, tica_source = tica_from_reference_runs(sequence, args.reference_runs), "reference runs"
    if tica_model is None:
        features = [analysis.dihedral_features(*analysis.backbone_dihedrals(runs[m]["frames"], topology))
                    for m in BASELINES]
        tica_model, tica_source = analysis.fit_tica(features, lagtime=TICA_LAG_FRAMES), "baselines pooled"
    results = {name: evaluate_run(run, topology, reference, tica_model, basins) for name, run in runs.items()}
    required = [indicator_name(r, b, len(reference.histograms)) for r, b in basins]
    strongest, baseline, lower = strongest_baseline({m: results[m] for m in BASELINES},
                                                   {m: runs[m]["seconds"] for m in BASELINES}, required)
    tw = results["timewarp"]["ess_per_second"]
    visits = {m: results[m]["all_basins_seconds"] for m in BASELINES if results[m]["all_basins_seconds"]}
    explore_time = results["explore"]["all_basins_seconds"]
    if explore_time is None:
        exploration = (None, False)
    elif visits:
        exploration = (min(visits.values()) / explore_time, False)
    else:  # no baseline visited them all within its budget: the ratio is at least budget / explore time
        exploration = (args.baseline_seconds / explore_time, True)
    phi_tw, psi_tw = analysis.backbone_dihedrals(runs["timewarp"]["frames"], topology)
    return {
        "sequence": sequence,
        "dihedrals_deg": (phi_tw.astype(np.float32), psi_tw.astype(np.float32)),
        "basins": [f"{b}:{r}" for r, b in basins],
        "ladder_K": ladder,
        "remd": {k: runs["remd"][k] for k in ("iterations", "state0_changes", "round_trips")},
        "timewarp_remd": ({k: runs["timewarp-remd"][k] for k in ("temperatures", "iterations", "state0_changes",
                                                                 "round_trips", "acceptance", "hmc_acceptance")}
                          if args.timewarp_remd else None),
        "timewarp_remd_ratio": (results["timewarp-remd"]["ess_per_second"] / baseline
                                if args.timewarp_remd and baseline > 0 else None),
        "timewarp_remd_ratio_lower_bound": bool(args.timewarp_remd and lower
                                                and results["timewarp-remd"]["ess_per_second"] > 0),
        "timewarp_remd_jsd": results["timewarp-remd"]["jsd"] if args.timewarp_remd else None,
        "tica_fitted_on": tica_source,
        "acceptance": runs["timewarp"]["acceptance"],
        "hmc_acceptance": runs["timewarp"]["hmc_acceptance"],
        "steps": runs["timewarp"]["proposals"],
        "ess_per_second": {m: r["ess_per_second"] for m, r in results.items()},
        # Without the basin indicators: sin/cos of phi and psi and TICA-1, which every run samples.
        "smooth_ess_per_second": {m: r["smooth_ess_per_second"] for m, r in results.items()},
        "strongest_baseline": strongest,
        "ess_ratio": tw / baseline if baseline > 0 else math.inf,
        "ess_ratio_lower_bound": lower and tw > 0,
        "timewarp_missed": [name for name in required if results["timewarp"]["ess"][name] == 0],
        "jsd": results["timewarp"]["jsd"],
        "jsd_baselines": {m: results[m]["jsd"] for m in BASELINES},
        "reference_jsd_between_halves": reference.metadata.get("jsd_between_halves"),
        "explore_seconds": explore_time,
        "baseline_all_basins_seconds": visits,
        "exploration_ratio": exploration[0],
        "exploration_ratio_lower_bound": exploration[1],
        "simulated_ns": {m: runs[m]["simulated_ns"] for m in BASELINES},
        "ess": {m: r["ess"] for m, r in results.items()},
    }


def rescore(path: str, sequences: Optional[List[str]], references: Optional[str]) -> None:
    """JSD per residue of saved Timewarp dihedrals (``--dihedrals``) to the current references."""
    with np.load(path) as saved:
        angles = {key: saved[key] for key in saved.files}
    for sequence in sequences or sorted({key.rsplit("_", 1)[0] for key in angles}):
        reference = analysis.load_reference(reference_path(sequence, references))
        phi, psi = angles[f"{sequence}_phi"], angles[f"{sequence}_psi"]
        jsd = [analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]), reference.histograms[r])
               for r in range(phi.shape[1])]
        own = reference.metadata.get("jsd_between_halves") or []
        print(f"{sequence}: JSD per residue {' '.join(f'{j:.4f}' for j in jsd)} (reference's own "
              f"{' '.join(f'{j:.3f}' for j in own) or 'unknown'})")


def default_sequences(split: str, references: Optional[str]) -> List[str]:
    """The split's validation sequences that have a reference file."""
    with open(split) as f:
        validation = json.load(f)["validation"]
    paths = [reference_path(s, references) for s in validation]
    return [s for s, p in zip(validation, paths)
            if os.path.exists(p if p.endswith(".npz") else os.path.join(analysis.REFERENCE_DIR, p + ".npz"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped model name")
    parser.add_argument("--sequences", nargs="+", help="one-letter sequences between the caps (default: the "
                                                       "split's validation ones with a reference)")
    parser.add_argument("--split", default=SPLIT, help="split file for the default sequences")
    parser.add_argument("--references", help="folder of reference .npz files (default: the shipped ones)")
    parser.add_argument("--reference-runs", help="folder of make-reference run folders to fit TICA on")
    parser.add_argument("--seconds", type=float, default=300.0, help="wall-clock budget of timewarp and explore")
    parser.add_argument("--baseline-seconds", type=float, default=600.0, help="wall-clock budget of each baseline")
    parser.add_argument("--t-max", type=float, default=450.0, help="top of the replica-exchange ladder, K")
    parser.add_argument("--exchange", type=float, default=0.3, help="target neighbour exchange probability")
    parser.add_argument("--frame-ps", type=float, default=1.0, help="frame interval of the baselines")
    parser.add_argument("--min-population", type=float, default=1e-3,
                        help="reference population from which a basin must be visited")
    parser.add_argument("--platform", choices=("Reference", "CPU"),
                        help="platform of every run (default: whichever runs the peptide's MD faster, measured)")
    parser.add_argument("--timewarp-remd", type=int, default=0, metavar="STEPS",
                        help="also run Timewarp inside replica exchange for --seconds, STEPS Timewarp steps per replica "
                             "and iteration (0: not)")
    parser.add_argument("--every-step", action="store_true",
                        help="with --timewarp-remd: keep every step of the replica at 310 K (default: its conformation "
                             "after each iteration)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    parser.add_argument("--json", help="write the results here (after every peptide)")
    parser.add_argument("--dihedrals", help="write the timewarp runs' phi and psi (degrees) here, .npz with "
                                            "<SEQ>_phi and <SEQ>_psi: JSDs to a later reference need no rerun")
    parser.add_argument("--rescore", metavar="DIHEDRALS.npz", help="run nothing: score a --dihedrals file of an "
                                                                   "earlier run against the current references")
    args = parser.parse_args()
    if args.rescore:
        rescore(args.rescore, [s.upper() for s in args.sequences] if args.sequences else None, args.references)
        return
    torch.set_num_threads(args.threads)
    sequences = [s.upper() for s in args.sequences] if args.sequences else default_sequences(args.split,
                                                                                           args.references)
    if not sequences:
        parser.error("no sequences: no validation peptide has a reference (make them with openmm-timewarp "
                     "make-reference)")
    print(f"model {args.model}; {args.seconds:.0f} s of Timewarp, {args.baseline_seconds:.0f} s of each of "
          f"{', '.join(BASELINES)}; {', '.join(sequences)}", flush=True)
    rows, dihedrals = [], {}
    for sequence in sequences:
        row = benchmark_peptide(sequence, args)
        phi, psi = row.pop("dihedrals_deg")
        dihedrals.update({f"{sequence}_phi": phi, f"{sequence}_psi": psi})
        rows.append(row)
        own = row["reference_jsd_between_halves"] or []
        ess = row["ess_per_second"]
        print(f"{sequence}: acceptance {row['acceptance']:.3f}; ESS/s timewarp {ess['timewarp']:.4f}, "
              + ", ".join(f"{m} {ess[m]:.4f}" for m in BASELINES)
              + f"; ratio to {row['strongest_baseline']} {bound(row['ess_ratio'], row['ess_ratio_lower_bound'])}"
              + "\n  without basin indicators, ESS/s " + ", ".join(f"{m} {row['smooth_ess_per_second'][m]:.4f}"
                                                             for m in ("timewarp",) + BASELINES)
              + f"\n  JSD per residue {' '.join(f'{j:.4f}' for j in row['jsd'])} (reference's own "
              + f"{' '.join(f'{j:.3f}' for j in own) or 'unknown'}); every basin: explore "
              + f"{bound(row['explore_seconds'], False)} s, baselines "
              + (", ".join(f"{m} {t:.0f} s" for m, t in row["baseline_all_basins_seconds"].items()) or "never")
              + f", ratio {bound(row['exploration_ratio'], row['exploration_ratio_lower_bound'])}"
              + f"\n  replica exchange: {len(row['ladder_K'])} replicas, 310 K held by another replica after "
              + f"{row['remd']['state0_changes']:.2f} of iterations, {row['remd']['round_trips']} round trips; "
              + f"TICA fitted on {row['tica_fitted_on']}", flush=True)
        if row["timewarp_remd"]:
            tr = row["timewarp_remd"]
            print(f"  Timewarp in replica exchange ({len(tr['temperatures'])} replicas, {tr['iterations']} iterations, "
                  f"{tr['round_trips']} round trips, acceptance {tr['acceptance']:.3f}): ESS/s "
                  f"{ess['timewarp-remd']:.4f}, ratio {bound(row['timewarp_remd_ratio'], row['timewarp_remd_ratio_lower_bound'])}; "
                  f"without basin indicators {row['smooth_ess_per_second']['timewarp-remd']:.4f}; JSD per residue "
                  f"{' '.join(f'{j:.4f}' for j in row['timewarp_remd_jsd'])}", flush=True)
        if row["timewarp_missed"]:
            print(f"  Timewarp with MH never entered {', '.join(row['timewarp_missed'])}", flush=True)
        if args.json:  # after every peptide, so that a long run can be read while it goes
            with open(args.json, "w") as f:
                json.dump({"model": args.model, "seconds": args.seconds, "baseline_seconds": args.baseline_seconds,
                           "rows": rows}, f, indent=1, default=float)
        if args.dihedrals:
            np.savez_compressed(args.dihedrals, **dihedrals)
    ratios = [r["ess_ratio"] for r in rows]
    explorations = [r["exploration_ratio"] if r["exploration_ratio"] is not None else 0.0 for r in rows]
    worst_jsd = max(max(r["jsd"]) for r in rows)
    print(f"\nmedian ESS/s ratio {np.median(ratios):.1f} (goal >= 10); largest JSD {worst_jsd:.4f} (goal <= 0.03); "
          f"median exploration ratio {np.median(explorations):.1f} (goal >= 100); median acceptance "
          f"{np.median([r['acceptance'] for r in rows]):.3f}")
    print("ratios marked >= are lower bounds: no baseline visited every reference basin in its budget")


if __name__ == "__main__":
    main()
