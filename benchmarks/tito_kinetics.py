"""TITO surrogate dynamics against MD: kinetics, stationary distribution and simulated time per second.

For every peptide of ``--sequences`` (amber14 + built-in OBC2, no constraints, 310 K):

* ``kinetics``: ``TitoIntegrator`` at ``--kinetics-lag-ps`` per step for ``--kinetics-seconds``; its
  basin Markov state models (deeptime, reversible maximum likelihood, each residue's four basins)
  at the MSM lags of ``--msm-lags-ps`` give the two slowest implied timescales and mean first
  passage times between the main basins;
* ``equilibrium``: an exact Timewarp chain (the default model) for ``--equilibrium-seconds``, whose
  basin populations both TITO runs are told to keep (``TitoIntegrator(basin_populations=...)``,
  as ``openmm-timewarp tito`` does); its wall time counts in TITO's speed;
* ``production``: ``TitoIntegrator`` at ``--lag-ps`` for ``--tito-seconds``: the stationary
  (phi, psi) distribution (JSD to the shipped reference, per residue, with the JSD a perfect
  sampler would have with as many independent frames) and simulated ns per wall-clock second,
  model loading, Context creation and the equilibrium chain included;
* MD at 1 fs (the System TITO runs on) and MD with HBonds + hydrogen mass 4 amu at 4 fs (what a
  practitioner runs) for ``--md-seconds`` each on the faster platform: simulated ns per second.

Without ``--md-data`` only the stationary distribution and the speed are measured. MD kinetics
come from the MD trajectories of ``--md-data/SEQUENCE`` (shards of ``generate-data``:
trajectories started in every basin, the same force field, temperature, friction and hydrogen
mass as the TITO training data; several folders are pooled, e.g. a second set started only at
phi > 0 with ``--start-basins alpha_L PII_L``, so that MD sees enough exits from those basins to
fix their rates), on the same discretisation and MSM lags. They start out of
equilibrium and rarely return to the phi > 0 basins they leave, so the MD MSM has the reference's
basin populations as its stationary distribution (with detailed balance, the exits MD observes fix
the rates). MD's uncertainty: the standard deviation over ``--bootstrap`` resamplings of its
trajectories. Plots: implied timescales against the MSM lag, MD and TITO, one PNG per peptide.

Goals (issue 22): both slowest timescales within a factor 2 of MD's, stationary JSD at most 0.03
per residue, at least 1000x the simulated ns per second of the faster MD.

    python benchmarks/tito_kinetics.py --md-data /work/data/tito-md --sequences A AC PS TT GM \\
        --plots tito-plots --json tito.json
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Dict, List

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import TitoIntegrator, analysis
from openmm_timewarp.analysis.msm import implied_timescales, mean_first_passage_ps, plot_implied_timescales
from openmm_timewarp.benchmarking import (TEMPERATURE, basin_labels, fastest_platform, md_run, run_for,
                                         thermalized_peptide, timewarp_run)
from openmm_timewarp.data.storage import iter_shards, read_shard
from openmm_timewarp.model_file import DEFAULT_MODEL
from openmm_timewarp.run.results import residue_populations
from openmm_timewarp.run.tito import basin_table, largest_population_error

PASSAGES = (("beta", "alpha_R"), ("alpha_R", "beta"), ("beta", "alpha_L"), ("alpha_L", "beta"))
"""Mean first passage times reported: within phi < 0, and the phi flip both ways."""


def md_data(folders: List[str], topology) -> Dict:
    """Basin-label trajectories of the MD shards in ``folders`` (pooled), their frame interval and length."""
    paths = [p for folder in folders for p in iter_shards(folder)]
    if not paths:
        raise SystemExit(f"no traj_*.npz shards in {', '.join(folders)}")
    shards = [read_shard(p) for p in paths]
    frame_ps = {float(s["metadata"]["frame_interval_ps"]) for s in shards}
    if len(frame_ps) != 1:
        raise SystemExit(f"the shards of {', '.join(folders)} have different frame intervals {sorted(frame_ps)}")
    step = frame_ps.pop()
    return {"labels": [basin_labels(s["frames"], topology) for s in shards], "frame_ps": step,
            "ns": sum(len(s["frames"]) - 1 for s in shards) * step / 1000.0}


def equilibrium_run(topology, system, positions, seconds: float, seed: int) -> Dict:
    """An exact Timewarp chain of the default model for ``seconds`` (loading included): its frames'
    basin populations as ``openmm-timewarp tito`` takes them (:func:`~openmm_timewarp.run.tito.basin_table`),
    their largest standard error, and the frames' ``phi`` and ``psi``."""
    run = timewarp_run(DEFAULT_MODEL, topology, system, positions, seconds, seed, hmc_interval=None)
    run["phi"], run["psi"] = analysis.backbone_dihedrals(run["frames"], topology)
    populations = residue_populations(run["phi"], run["psi"])
    run["basin_populations"] = basin_table(populations, len(run["frames"]))
    run["largest_error"] = largest_population_error(populations)
    return run


def histogram_jsds(phi: np.ndarray, psi: np.ndarray, reference) -> List[float]:
    """JSD of every residue's (phi, psi) histogram (angles (frames, residues), degrees) to the reference's."""
    return [analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]), reference.histograms[r])
            for r in range(phi.shape[1])]


def jsd_floor(histogram: np.ndarray, frames: int, seed: int, draws: int = 20) -> float:
    """Mean JSD to ``histogram`` of histograms of ``frames`` independent draws from it: what a
    perfect sampler would score with that many uncorrelated frames."""
    rng = np.random.default_rng(seed)
    p = histogram.ravel() / histogram.sum()
    return float(np.mean([analysis.jensen_shannon(rng.multinomial(frames, p).astype(float), p)
                          for _ in range(draws)]))


def tito_run(model: str, topology, system, positions, seconds: float, lag_ps: float, seed: int,
             basin_populations=None) -> Dict:
    """A TITO trajectory for ``seconds`` of stepping; ``load_s`` is the set-up (model loading, Context)."""
    began = time.perf_counter()
    integrator = TitoIntegrator(model, topology, TEMPERATURE, lag_ps * unit.picosecond, random_seed=seed,
                                basin_populations=basin_populations)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.step(1)
    load_s = time.perf_counter() - began
    result = run_for(seconds, lambda: integrator.step(1), context)
    result.update(acceptance=integrator.getAcceptanceRate(), hmc_acceptance=integrator.getHMCAcceptanceRate(),
                  simulated_ns=len(result["frames"]) * lag_ps / 1000, load_s=load_s)
    return result


def kinetics(labels: List[np.ndarray], step_ps: float, lags_ps: List[float], residue: int,
             stationary=None) -> Dict:
    """Implied timescales and passage times of one residue at each MSM lag (a multiple of ``step_ps``)."""
    out: Dict = {}
    for lag in lags_ps:
        steps = int(round(lag / step_ps))
        if steps < 1 or abs(steps * step_ps - lag) > 1e-6:
            continue
        trajectories = [t[:, residue] for t in labels]
        out[lag] = {"timescales_ps": implied_timescales(trajectories, steps, step_ps, stationary),
                    "mfpt_ps": {f"{a}->{b}": mean_first_passage_ps(trajectories, steps, step_ps, a, b, stationary)
                                for a, b in PASSAGES}}
    return out


def bootstrap_timescales(labels: List[np.ndarray], step_ps: float, lag_ps: float, residue: int, stationary,
                         count: int, seed: int) -> List[float]:
    """Standard deviation of the two slowest timescales over resamplings of the trajectories."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(count):
        pick = rng.integers(len(labels), size=len(labels))
        draws.append(implied_timescales([labels[i][:, residue] for i in pick], int(round(lag_ps / step_ps)), step_ps,
                                        stationary))
    return list(np.nanstd(np.array(draws), axis=0))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dipeptides-tito", help="TITO model (shipped name or file)")
    parser.add_argument("--md-data", nargs="+", default=[],
                        help="folders with one folder of MD shards per sequence (several: pooled); without it "
                             "no kinetics are compared: stationary distribution and speed only")
    parser.add_argument("--sequences", nargs="+", default=["A", "AC", "PS", "TT", "GM"])
    parser.add_argument("--lag-ps", type=float, default=1000.0, help="TITO lag of the production run")
    parser.add_argument("--kinetics-lag-ps", type=float, default=50.0, help="TITO lag of the kinetics run")
    parser.add_argument("--msm-lags-ps", type=float, nargs="+", default=[50.0, 100.0, 200.0])
    parser.add_argument("--tito-seconds", type=float, default=60.0)
    parser.add_argument("--kinetics-seconds", type=float, default=60.0)
    parser.add_argument("--md-seconds", type=float, default=20.0)
    parser.add_argument("--equilibrium-seconds", type=float, default=20.0,
                        help="exact Timewarp chain whose basin populations TITO keeps (0: none, the model's own)")
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plots", help="folder for the implied-timescale plots")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
    results: Dict = {"settings": vars(args), "peptides": {}}
    for sequence in args.sequences:
        topology, system, start = thermalized_peptide(sequence, args.seed)
        reference = analysis.load_reference(analysis.reference_name(sequence))
        platform = fastest_platform(system, start)
        runs = {"md": md_run(topology, start, args.md_seconds, 1.0, 1.0, platform, args.seed, False),
                "md-hmr": md_run(topology, start, args.md_seconds, 4.0, 1.0, platform, args.seed, True)}
        pi, equilibrium_s, equilibrium_jsd, equilibrium_error = None, 0.0, None, None
        if args.equilibrium_seconds > 0:
            equilibrium = equilibrium_run(topology, system, start, args.equilibrium_seconds, args.seed)
            pi, equilibrium_s = equilibrium["basin_populations"], equilibrium["seconds"]
            equilibrium_jsd = histogram_jsds(equilibrium["phi"], equilibrium["psi"], reference)
            equilibrium_error = equilibrium["largest_error"]
        runs["production"] = tito_run(args.model, topology, system, start, args.tito_seconds, args.lag_ps, args.seed, pi)
        if args.md_data:
            runs["kinetics"] = tito_run(args.model, topology, system, start, args.kinetics_seconds,
                                        args.kinetics_lag_ps, args.seed + 1, pi)
        speed = {name: runs[name]["simulated_ns"] / runs[name]["seconds"] for name in ("md", "md-hmr")}
        production = runs["production"]
        speed["tito"] = production["simulated_ns"] / (production["seconds"] + production["load_s"] + equilibrium_s)
        phi, psi = analysis.backbone_dihedrals(production["frames"], topology)
        row: Dict = {"speed_ns_per_s": speed, "speed_ratio": speed["tito"] / max(speed["md"], speed["md-hmr"]),
                     "md_platform": platform.getName(), "tito_steps": len(production["frames"]),
                     "tito_kept": production["acceptance"], "relaxation_acceptance": production["hmc_acceptance"],
                     "jsd": histogram_jsds(phi, psi, reference),
                     "jsd_perfect_sampler": [jsd_floor(reference.histograms[r], len(phi), args.seed)
                                             for r in range(phi.shape[1])],
                     "equilibrium": {"seconds": equilibrium_s, "basin_populations": pi, "jsd": equilibrium_jsd,
                                     "largest_error": equilibrium_error},
                     "populations": [analysis.basin_populations(phi[:, r], psi[:, r]) for r in range(phi.shape[1])],
                     "residues": []}
        print(f"\n{sequence}: simulated ns per second MD {speed['md']:.3f}, MD HBonds+HMR 4 fs {speed['md-hmr']:.3f} "
              f"({platform.getName()}), TITO {speed['tito']:.1f} at {args.lag_ps:g} ps per step with loading: "
              f"{row['speed_ratio']:.0f}x (goal 1000x); moves kept {production['acceptance']:.3f}, relaxation "
              f"accepted {production['hmc_acceptance']:.3f}; JSD {np.round(row['jsd'], 4).tolist()} (goal <= 0.03; a "
              f"perfect sampler with {len(phi)} independent frames: {np.round(row['jsd_perfect_sampler'], 4).tolist()})"
              f"; exact chain for the basin populations {equilibrium_s:.1f} s: {np.round(pi, 3).tolist() if pi else '-'}"
              + (f", its JSD {np.round(equilibrium_jsd, 4).tolist()}, largest standard error "
                 f"{equilibrium_error['standard_error']:.3f}" if equilibrium_jsd else ""),
              flush=True)
        results["peptides"][sequence] = row
        if not args.md_data:
            write_json(args.json, results)
            continue
        md = md_data([os.path.join(folder, sequence) for folder in args.md_data], topology)
        row["md_data_ns"] = md["ns"]
        tito_labels = [basin_labels(runs["kinetics"]["frames"], topology)]
        curves = {}
        for r, populations in enumerate(reference.residue_populations):
            stationary = np.array([populations[name][0] for name in analysis.BASIN_NAMES])
            md_k = kinetics(md["labels"], md["frame_ps"], args.msm_lags_ps, r, stationary)
            tito_k = kinetics(tito_labels, args.kinetics_lag_ps, args.msm_lags_ps, r)
            lags = [lag for lag in args.msm_lags_ps if lag in md_k and lag in tito_k]
            errors = {lag: bootstrap_timescales(md["labels"], md["frame_ps"], lag, r, stationary, args.bootstrap,
                                                args.seed) for lag in lags}
            row["residues"].append({"md": {str(k): v for k, v in md_k.items()},
                                    "tito": {str(k): v for k, v in tito_k.items()},
                                    "md_timescale_sd_ps": {str(k): v for k, v in errors.items()}})
            print(f"  residue {r + 1}: MSM lag, implied timescales t1 / t2 (ps) MD +- sd, TITO, ratio TITO/MD; "
                  "MFPT (ps) MD / TITO")
            for lag in lags:
                m, t = md_k[lag]["timescales_ps"], tito_k[lag]["timescales_ps"]
                print(f"    {lag:6g}  t1 {m[0]:8.0f} +- {errors[lag][0]:6.0f} {t[0]:8.0f} {t[0] / m[0]:5.2f}   "
                      f"t2 {m[1]:8.0f} +- {errors[lag][1]:6.0f} {t[1]:8.0f} {t[1] / m[1]:5.2f}   " + "  ".join(
                          f"{name} {md_k[lag]['mfpt_ps'][name]:.0f}/{tito_k[lag]['mfpt_ps'][name]:.0f}"
                          for name in md_k[lag]["mfpt_ps"]), flush=True)
            if lags:
                curves[f"residue {r + 1} MD"] = (lags, np.array([md_k[lag]["timescales_ps"] for lag in lags]))
                curves[f"residue {r + 1} TITO"] = (lags, np.array([tito_k[lag]["timescales_ps"] for lag in lags]))
        if args.plots and curves:
            plot_implied_timescales(os.path.join(args.plots, f"its_{sequence}.png"), args.msm_lags_ps, curves,
                                    title=f"ACE-{sequence}-NME: MD ({md['ns']:.0f} ns from every basin) and TITO "
                                          f"(lag {args.kinetics_lag_ps:g} ps)")
        write_json(args.json, results)


def write_json(path, results: Dict) -> None:
    """Write the results so far (after every peptide, so an interrupted run keeps them)."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
