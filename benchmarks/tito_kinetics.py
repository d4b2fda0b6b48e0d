"""TITO surrogate dynamics against MD on one peptide: kinetics, distribution and simulated time per second.

Runs, on the same System (amber14, built-in OBC2, no constraints):

* ``md`` and ``md-hmr`` (HBonds, hydrogen mass 4 amu, 4 fs) for ``--md-seconds`` each: their
  simulated nanoseconds per wall-clock second;
* ``tito``: ``TitoIntegrator`` at ``--lag-ps`` per step for ``--tito-seconds``;
* ``explore``: Timewarp's exploration mode (``--timewarp-model``), for the side-by-side JSD and the
  time to visit every reference basin.

Kinetics: for every residue, a reversible maximum-likelihood Markov state model (deeptime) on
its four basins at each lag of ``--msm-lags-ps``.  The TITO model is estimated from the TITO
trajectory alone.  The benchmark's own MD is far too short for the phi flip, so the MD model
comes from the MD trajectories of ``--md-data`` (shards of ``openmm_timewarp.data.generate``:
many nanoseconds, started in every basin).  Those start out of equilibrium and rarely enter the
phi > 0 basins they leave, so the MD model is estimated with the reference's basin populations as
its stationary distribution (deeptime's ``stationary_distribution_constraint``): with detailed
balance, the exits that MD does observe fix the rates.  Reported: the implied timescales of both
and the ratio of the slowest; the JSD of every residue's (phi, psi) histogram to the reference;
and simulated ns per wall-clock second, TITO over MD.
Goals (issue 6): slowest timescale within a factor 2 of MD, JSD at most 0.03, and at least 1000x
the simulated ns per second of MD.

    python benchmarks/tito_kinetics.py --model tito.pt --md-data work/ace-ala-nme/data --sequence A --lag-ps 100
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, List, Optional, Sequence

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import TitoIntegrator, analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE, basin_labels, fastest_platform, md_run, run_for, timewarp_run
from openmm_timewarp.data.storage import iter_shards, read_shard

N_BASINS = len(analysis.BASIN_NAMES)


def implied_timescales(trajectories: Sequence[np.ndarray], lag_steps: int, step_ps: float,
                       stationary: Optional[np.ndarray] = None, k: int = 2) -> List[float]:
    """The ``k`` slowest implied timescales (ps) of a reversible MSM over the basins at ``lag_steps``.

    With ``stationary`` (populations of the basins) the MSM has that stationary distribution;
    without, it is estimated on the largest connected set.  NaN where there are fewer processes.
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    counts = TransitionCountEstimator(lagtime=lag_steps, count_mode="sliding", n_states=N_BASINS).fit(
        [np.asarray(t, dtype=np.int32) for t in trajectories]).fetch_model()
    if stationary is not None:
        keep = stationary > 0
        counts = counts.submodel(np.flatnonzero(keep))
        estimator = MaximumLikelihoodMSM(reversible=True, stationary_distribution_constraint=stationary[keep] / stationary[keep].sum())
    else:
        counts = counts.submodel_largest()
        estimator = MaximumLikelihoodMSM(reversible=True)
    msm = estimator.fit(counts).fetch_model()
    timescales = list(msm.timescales(k=min(k, msm.n_states - 1)) * step_ps) if msm.n_states > 1 else []
    return timescales + [float("nan")] * (k - len(timescales))


def md_data_trajectories(folder: str, topology) -> tuple:
    """Discrete trajectories of the MD shards in ``folder`` and their frame interval (ps)."""
    paths = list(iter_shards(folder))
    if not paths:
        raise SystemExit(f"no traj_*.npz shards in {folder}")
    shards = [read_shard(p) for p in paths]
    frame_ps = {float(s["metadata"]["frame_interval_ps"]) for s in shards}
    if len(frame_ps) != 1:
        raise SystemExit(f"the shards of {folder} have different frame intervals {sorted(frame_ps)}")
    total_ns = sum(len(s["frames"]) for s in shards) * frame_ps.copy().pop() / 1000
    return [basin_labels(s["frames"], topology) for s in shards], frame_ps.pop(), total_ns


def tito_run(model: str, topology, system, positions, seconds: float, lag_ps: float, seed: int) -> Dict:
    integrator = TitoIntegrator(model, topology, TEMPERATURE, lag_ps * unit.picosecond, random_seed=seed)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    result = run_for(seconds, lambda: integrator.step(1), context)
    result.update(acceptance=integrator.getAcceptanceRate(), simulated_ns=len(result["frames"]) * lag_ps / 1000)
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="TITO model file")
    parser.add_argument("--md-data", required=True, help="folder of MD shards of the same peptide (for MD kinetics)")
    parser.add_argument("--sequence", default="A")
    parser.add_argument("--lag-ps", type=float, default=100.0, help="TITO lag per step")
    parser.add_argument("--msm-lags-ps", type=float, nargs="+", default=[100.0, 200.0, 500.0])
    parser.add_argument("--tito-seconds", type=float, default=120.0)
    parser.add_argument("--md-seconds", type=float, default=30.0)
    parser.add_argument("--timewarp-model", default="ace-ala-nme", help="model of the exploration-mode run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)

    topology, positions = systems.peptide_from_sequence(args.sequence, seed=args.seed)
    system = systems.create_system(topology)
    platform = fastest_platform(system, positions)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
    reference = analysis.load_reference(analysis.reference_name(args.sequence))
    runs = {
        "md": md_run(topology, start, args.md_seconds, 1.0, 1.0, platform, args.seed, False),
        "md-hmr": md_run(topology, start, args.md_seconds, 4.0, 1.0, platform, args.seed, True),
        "tito": tito_run(args.model, topology, system, start, args.tito_seconds, args.lag_ps, args.seed),
        "explore": timewarp_run(args.timewarp_model, topology, system, start, args.tito_seconds, args.seed,
                                explore=True, hmc_interval=None),
    }
    speed = {name: runs[name]["simulated_ns"] / runs[name]["seconds"] for name in ("md", "md-hmr", "tito")}
    md_speed = max(speed["md"], speed["md-hmr"])
    results: Dict = {"speed_ns_per_s": speed, "speed_ratio": speed["tito"] / md_speed,
                     "tito_acceptance": runs["tito"]["acceptance"], "tito_steps": len(runs["tito"]["frames"])}
    for name in ("tito", "explore", "md-hmr"):
        phi, psi = analysis.backbone_dihedrals(runs[name]["frames"], topology)
        results[f"jsd_{name}"] = [analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]),
                                                          reference.histograms[r]) for r in range(phi.shape[1])]
        results[f"populations_{name}"] = [analysis.basin_populations(phi[:, r], psi[:, r]) for r in range(phi.shape[1])]

    md_dtrajs, md_frame_ps, md_ns = md_data_trajectories(args.md_data, topology)
    tito_dtraj = basin_labels(runs["tito"]["frames"], topology)
    results["md_data_ns"] = md_ns
    results["timescales_ps"] = {}
    print(f"simulated ns per wall-clock second: MD {speed['md']:.4f}, MD-HMR {speed['md-hmr']:.4f}, TITO "
          f"{speed['tito']:.2f} ({results['speed_ratio']:.0f}x the stronger MD; goal 1000x); TITO moves passing the "
          f"energy/chirality check {results['tito_acceptance']:.3f} of {results['tito_steps']}")
    print(f"JSD to the reference: TITO {np.round(results['jsd_tito'], 4).tolist()}, Timewarp explore "
          f"{np.round(results['jsd_explore'], 4).tolist()}, MD-HMR {np.round(results['jsd_md-hmr'], 4).tolist()} "
          "(goal <= 0.03)")
    print(f"implied timescales (ps), MD from {md_ns:.0f} ns of MD data, TITO from {results['tito_steps']} steps of "
          f"{args.lag_ps:g} ps:")
    print(f"{'residue':>7s} {'MSM lag':>8s} {'MD t1':>9s} {'TITO t1':>9s} {'ratio':>6s} {'MD t2':>9s} {'TITO t2':>9s}")
    for r, populations in enumerate(reference.residue_populations):
        stationary = np.array([populations[name][0] for name in analysis.BASIN_NAMES])
        for lag in args.msm_lags_ps:
            md_steps, tito_steps = round(lag / md_frame_ps), round(lag / args.lag_ps)
            if abs(md_steps * md_frame_ps - lag) > 1e-6 or abs(tito_steps * args.lag_ps - lag) > 1e-6:
                print(f"{lag:8g} skipped: not a multiple of both frame intervals")
                continue
            md_t = implied_timescales([d[:, r] for d in md_dtrajs], md_steps, md_frame_ps, stationary)
            tito_t = implied_timescales([tito_dtraj[:, r]], tito_steps, args.lag_ps)
            results["timescales_ps"][f"{r}:{lag:g}"] = {"md": md_t, "tito": tito_t}
            print(f"{r + 1:7d} {lag:8g} {md_t[0]:9.0f} {tito_t[0]:9.0f} {tito_t[0] / md_t[0]:6.2f} {md_t[1]:9.0f} "
                  f"{tito_t[1]:9.0f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
