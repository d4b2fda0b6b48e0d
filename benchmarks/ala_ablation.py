"""What each part of the shipped ACE-ALA-NME model is worth: backbone-pivot weight x hybrid Monte Carlo interval.

Every combination of ``--weights`` (probability of a backbone pivot, the rest flow proposals) and
``--hmc-intervals`` (steps between hybrid Monte Carlo moves, 0 for none) is exported from the two
training checkpoints and run with Metropolis-Hastings for ``--seconds`` of wall time from the same
thermalized start, one after the other in this process. Printed per combination: steps per second,
acceptance of the proposals and of HMC, ESS per second of sin/cos phi and psi and TICA-free basin
indicators, alpha_L entries per second, the JSD to the project's reference and the alpha_L
population with its error bar.

    python benchmarks/ala_ablation.py --flow RUN/best.pt --backbone RUN/backbone.pt \\
        --weights 1.0 0.9 --hmc-intervals 0 2 --seconds 40
"""
from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import TimewarpIntegrator, analysis, systems
from openmm_timewarp.proposals.export import export_model, load_checkpoint
from openmm_timewarp.proposals.mixture import ProposalMixture

TEMPERATURE = 310.0 * unit.kelvin


def export_mixture(flow_checkpoint: Path, backbone_checkpoint: Path, weight: float, out: Path) -> None:
    flow, info = load_checkpoint(flow_checkpoint)
    flow.set_kernels(0.0, 0.9, 0.1, local_step=0.3)  # the shipped flow kernels
    kernel, _ = load_checkpoint(backbone_checkpoint)
    metadata = {k: v for k, v in info.items() if k not in ("lag_ps", "temperature_K")}
    export_model(ProposalMixture([kernel, flow], [weight, 1.0 - weight]), out, lag_ps=info["lag_ps"],
                 temperature_K=info["temperature_K"], metadata=metadata)


def run(model: Path, topology, system, start, seconds: float, hmc_interval: int, seed: int) -> dict:
    integrator = TimewarpIntegrator(str(model), topology, TEMPERATURE, random_seed=seed, hmc_interval=hmc_interval)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(start)
    frames = []
    began = time.perf_counter()
    while time.perf_counter() - began < seconds:
        integrator.step(1)
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    elapsed = time.perf_counter() - began
    phi, psi = analysis.backbone_dihedrals(np.array(frames), topology)
    ess = analysis.ess_report(analysis.observables(phi[:, 0], psi[:, 0]))
    histogram = analysis.ramachandran_histogram(phi[:, 0], psi[:, 0])
    reference = analysis.load_reference("ace-ala-nme_310K")
    return {
        "steps_per_second": len(frames) / elapsed,
        "acceptance": integrator.getAcceptanceRate(),
        "hmc_acceptance": integrator.getHMCAcceptanceRate(),
        "ess_per_second": {k: v / elapsed for k, v in ess.items()},
        "jsd": analysis.jensen_shannon(histogram, reference.histogram),
        "populations": analysis.basin_populations(phi[:, 0], psi[:, 0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", type=Path, required=True, help="flow training checkpoint (best.pt)")
    parser.add_argument("--backbone", type=Path, required=True, help="backbone density checkpoint")
    parser.add_argument("--weights", type=float, nargs="+", default=[1.0, 0.9])
    parser.add_argument("--hmc-intervals", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    topology, positions = systems.peptide_from_sequence("A")
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for weight, interval in itertools.product(args.weights, args.hmc_intervals):
            model = Path(scratch) / f"mixture_{weight}.pt"
            if not model.exists():
                export_mixture(args.flow, args.backbone, weight, model)
            r = run(model, topology, system, start, args.seconds, interval, args.seed)
            r.update(backbone_weight=weight, hmc_interval=interval)
            results.append(r)
            e, p = r["ess_per_second"], r["populations"]
            print(f"pivots {weight:.2f} hmc {interval}: {r['steps_per_second']:.0f} steps/s, acceptance "
                  f"{r['acceptance']:.3f} (HMC {r['hmc_acceptance']:.3f}), ESS/s sin phi {e['sin(phi)']:.1f} "
                  f"cos psi {e['cos(psi)']:.1f} beta {e['basin:beta']:.1f}, alpha_L entries/s "
                  f"{e['basin:alpha_L']:.2f}, JSD {r['jsd']:.4f}, alpha_L {p['alpha_L'][0]:.4f} +- {p['alpha_L'][1]:.4f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
