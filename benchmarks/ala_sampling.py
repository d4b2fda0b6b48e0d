"""Timewarp against plain MD on ACE-ALA-NME at 310 K, in one run on one machine, at equal wall time.

Methods, each given the same wall-clock budget on the same System (amber14, built-in OBC2, no
constraints):

* ``md``: ``LangevinMiddleIntegrator`` on that System at its largest stable step (``--md-step-fs``);
* ``md-hmr``: what a user would run for plain MD: HBonds constraints, hydrogen mass 4 amu, 4 fs;
* ``timewarp``: ``TimewarpIntegrator`` with Metropolis-Hastings;
* ``explore``: ``TimewarpIntegrator`` in exploration mode, timed until it first reaches alpha_L.

Reported (DESIGN.md section 5): ESS per wall-clock second (minimum over sin/cos of phi and psi, the
basin indicators of the basins the reference has, with at most one sample per basin entry, and the
first TICA component fitted on the ``md`` run), its ratio to the stronger MD baseline, the JSD of
the 36 x 36 (phi, psi) histogram to the project's reference, basin populations with error bars
against the reference's, the acceptance rate, and the wall time to the first alpha_L visit.

    python benchmarks/ala_sampling.py --model ace-ala-nme --seconds 600 --json results.json
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Dict

import numpy as np
import torch

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE, fastest_platform, generous_ess_per_second, md_run, timewarp_run


def evaluate(run: Dict, topology, reference: analysis.Reference, tica_model, required_basins) -> Dict:
    phi, psi = analysis.backbone_dihedrals(run["frames"], topology)
    series = analysis.observables(phi[:, 0], psi[:, 0], tica_model)
    ess = analysis.ess_report(series, required_basins)
    histogram = analysis.ramachandran_histogram(phi[:, 0], psi[:, 0])
    labels = analysis.assign_basins(phi[:, 0], psi[:, 0])
    first_alpha_l = np.flatnonzero(labels == analysis.BASIN_NAMES.index("alpha_L"))
    return {
        "frames": len(phi),
        "ess": {k: v for k, v in ess.items() if k != "min"},
        "ess_min": ess["min"],
        "ess_min_observable": min((k for k in ess if k != "min"), key=lambda k: ess[k]
                                  if not k.startswith("basin:") or k in required_basins else math.inf),
        "ess_per_second": ess["min"] / run["seconds"],
        "jsd": analysis.jensen_shannon(histogram, reference.histogram),
        "populations": analysis.basin_populations(phi[:, 0], psi[:, 0]),
        "first_alpha_l_seconds": float(run["times"][first_alpha_l[0]]) if len(first_alpha_l) else None,
    }


def populations_agree(measured: Dict, reference: analysis.Reference) -> bool:
    """Every basin population within two combined standard errors of the reference's."""
    for name, (p_ref, e_ref) in reference.populations.items():
        p, e = measured.get(name, (0.0, math.nan))
        error = math.hypot(e if math.isfinite(e) else 0.0, e_ref)
        if abs(p - p_ref) > 2 * error:
            return False
    return True


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ace-ala-nme", help="model file or shipped model name")
    parser.add_argument("--seconds", type=float, default=600.0, help="wall-clock budget of each method")
    parser.add_argument("--md-step-fs", type=float, default=1.0, help="largest stable step without constraints")
    parser.add_argument("--frame-ps", type=float, default=1.0, help="MD frame interval")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=0, help="fixed proposals per model call (0: adaptive)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the model (0: torch's default)")
    parser.add_argument("--hmc-interval", type=int, default=1,
                        help="model steps between hybrid Monte Carlo moves of the TimewarpIntegrator (0: none)")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    topology, positions = systems.peptide_from_sequence("A")
    system = systems.create_system(topology)
    platform = fastest_platform(system, positions)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)

    reference = analysis.load_reference("ace-ala-nme_310K")
    required = [f"basin:{name}" for name, (p, _) in reference.populations.items() if p > 0]
    print(f"platform for MD: {platform.getName()}; budget {args.seconds:.0f} s per method", flush=True)
    runs = {
        "md": md_run(topology, start, args.seconds, args.md_step_fs, args.frame_ps, platform, args.seed, False),
        "md-hmr": md_run(topology, start, args.seconds, 4.0, args.frame_ps, platform, args.seed, True),
        "timewarp": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, batch=args.batch,
                                 hmc_interval=args.hmc_interval),
        "explore": timewarp_run(args.model, topology, system, start, args.seconds, args.seed, explore=True,
                                batch=args.batch, hmc_interval=args.hmc_interval),
    }
    phi_md, psi_md = analysis.backbone_dihedrals(runs["md"]["frames"], topology)
    tica_model = analysis.fit_tica(analysis.dihedral_features(phi_md, psi_md), lagtime=10)
    results = {name: evaluate(run, topology, reference, tica_model, required) for name, run in runs.items()}
    baseline = max(results["md"]["ess_per_second"], results["md-hmr"]["ess_per_second"])
    # An MD run that never entered a required basin has ESS 0 there, and the ratio is undefined. Crediting
    # three entries for each such basin (a 95% Poisson bound) bounds MD's ESS per second from above, and so
    # Timewarp's ratio from below.
    generous = max(generous_ess_per_second(results[name], runs[name]["seconds"], required) for name in ("md", "md-hmr"))
    print_report(results, runs, reference, baseline, generous)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


def print_report(results: dict, runs: dict, reference, baseline: float, generous: float) -> None:
    """The table of methods, then the ESS per second of each observable."""
    print(f"\n{'method':9s} {'frames':>7s} {'ESS min':>8s} {'ESS/s':>8s} {'ratio':>7s} {'JSD':>7s} "
          f"{'alpha_L at':>10s}  populations (reference: "
          + ", ".join(f"{k} {p:.4f}+-{e:.4f}" for k, (p, e) in reference.populations.items()) + ")")
    for name, r in results.items():
        pops = ", ".join(f"{k} {p:.4f}+-{e:.4f}" for k, (p, e) in r["populations"].items() if k != "phi>0")
        first = f"{r['first_alpha_l_seconds']:.1f} s" if r["first_alpha_l_seconds"] is not None else "never"
        ratio = r["ess_per_second"] / baseline if baseline > 0 else math.nan  # no baseline ESS: undefined
        r["ratio"], r["populations_agree"] = ratio, populations_agree(r["populations"], reference)
        r["ratio_lower_bound"] = r["ess_per_second"] / generous
        print(f"{name:9s} {r['frames']:7d} {r['ess_min']:8.1f} {r['ess_per_second']:8.3f} {ratio:7.2f} "
              f"{r['jsd']:7.4f} {first:>10s}  {pops}  agree: {r['populations_agree']}")
    if baseline == 0:
        print(f"no MD run entered every basin of the reference: ratio undefined; crediting three entries for each "
              f"basin MD missed, Timewarp's ratio is at least {results['timewarp']['ratio_lower_bound']:.1f}")
    for name in ("timewarp", "explore"):
        print(f"{name} acceptance {runs[name]['acceptance']:.4f} over {runs[name]['proposals']} proposals, "
              f"hybrid Monte Carlo acceptance {runs[name]['hmc_acceptance']:.3f}")
    print("ESS minimum set by: " + ", ".join(f"{n}: {r['ess_min_observable']}" for n, r in results.items()))
    print("\nESS per second of each observable (entries cap the basin indicators):")
    print(f"{'observable':14s} " + " ".join(f"{name:>9s}" for name in results))
    for observable in results["md"]["ess"]:
        print(f"{observable:14s} " + " ".join(f"{r['ess'][observable] / runs[name]['seconds']:9.3f}"
                                             for name, r in results.items()))
    print(f"simulated: md {runs['md']['simulated_ns']:.2f} ns, md-hmr {runs['md-hmr']['simulated_ns']:.2f} ns")


if __name__ == "__main__":
    main()
