"""Cost of the C++ Metropolis-Hastings loop against its parts and against the same loop in Python.

On ACE-ALA-NME (amber14, OBC2 as the built-in GBSAOBCForce, no constraints) this measures, in one
run and on one platform:

* the model: microseconds per proposal of the TorchScript model at the batch size used;
* the energy: microseconds per energy evaluation through ``setPositions`` + ``getState``;
* the C++ loop: microseconds per ``TimewarpIntegrator`` step (one proposal and one energy each);
* the Python loop: the same algorithm written in Python over ``setPositions``/``getState``.

It prints the overhead of the C++ loop over model + energy (goal: under 10%) and its speed-up over
the Python loop. Timings alternate between the methods and report the median of the repeats.

    python benchmarks/integrator_overhead.py [--model FILE_OR_NAME] [--platform Reference]

Without ``--model`` it exports an untrained flow of the default size to a temporary file: the cost of
a proposal does not depend on the weights.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from typing import Dict, List, Tuple

import numpy as np
import openmm as mm
import torch
from openmm import unit

import openmm_timewarp
from openmm_timewarp import systems

KT_PER_KELVIN = 0.00831446261815324  # kJ/mol/K


def default_model(directory: str) -> str:
    from openmm_timewarp.proposals.export import export_model
    from openmm_timewarp.proposals.flow import TimewarpFlow

    torch.manual_seed(0)
    flow = TimewarpFlow(["H", "C", "N", "O", "S"])
    path = os.path.join(directory, "untrained.pt")
    export_model(flow, path, lag_ps=500.0, temperature_K=310.0, metadata={"note": "untrained, for timing"})
    return path


def python_loop(model, context: mm.Context, types: torch.Tensor, steps: int, batch: int, kt: float,
                rng: np.random.Generator) -> float:
    """The MH loop in Python; returns seconds per step."""
    state = context.getState(getPositions=True, getEnergy=True)
    x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    start = time.perf_counter()
    done = 0
    while done < steps:
        proposals, log_ratios = model(torch.from_numpy(x), types, batch)
        for y, log_ratio in zip(proposals.numpy(), log_ratios.tolist()):
            context.setPositions(y)
            trial = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            done += 1
            if math.log(rng.uniform()) < -(trial - energy) / kt + log_ratio:
                x, energy = y, trial
                break
            context.setPositions(x)
            if done == steps:
                break
    return (time.perf_counter() - start) / steps


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model file or shipped model name (default: an untrained flow)")
    parser.add_argument("--platform", default="Reference")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=310.0)
    parser.add_argument("--threads", type=int, help="torch threads (1 avoids OpenMP spin-waiting on a busy machine)")
    return parser.parse_args()


def minimized_start(system: mm.System, positions, platform: mm.Platform) -> Tuple[mm.Context, np.ndarray]:
    """A scratch Context for energies and the minimized start (nm)."""
    scratch = mm.Context(system, mm.VerletIntegrator(0.001), platform)
    scratch.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(scratch)
    return scratch, scratch.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)


def time_repeats(args: argparse.Namespace, model, types, integrator, context, scratch, x0) -> Dict[str, List[float]]:
    """Seconds per proposal (model), per energy, per C++ step and per Python step, one entry per repeat."""
    rng = np.random.default_rng(1)
    kt = KT_PER_KELVIN * args.temperature
    sample, _ = model(torch.from_numpy(x0), types, args.batch)
    timings: Dict[str, List[float]] = {"model": [], "energy": [], "cpp": [], "python": []}
    for _ in range(args.repeats):
        with torch.inference_mode():
            start = time.perf_counter()
            for _ in range(args.steps // args.batch):
                model(torch.from_numpy(x0), types, args.batch)
            timings["model"].append((time.perf_counter() - start) / (args.steps // args.batch * args.batch))
        start = time.perf_counter()
        for y in sample.numpy():
            scratch.setPositions(y)
            scratch.getState(getEnergy=True)
        timings["energy"].append((time.perf_counter() - start) / len(sample))
        context.setPositions(x0)
        start = time.perf_counter()
        integrator.step(args.steps)
        timings["cpp"].append((time.perf_counter() - start) / args.steps)
        scratch.setPositions(x0)
        with torch.inference_mode():
            timings["python"].append(python_loop(model, scratch, types, args.steps, args.batch, kt, rng))
    return timings


def report(args: argparse.Namespace, timings: Dict[str, List[float]], num_atoms: int, acceptance: float) -> None:
    us = {k: statistics.median(v) * 1e6 for k, v in timings.items()}
    parts = us["model"] + us["energy"]
    print(f"ACE-ALA-NME, {num_atoms} atoms, platform {args.platform}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats, torch threads {torch.get_num_threads()}")
    print(f"model call          {us['model']:9.1f} us per proposal")
    print(f"energy (Python)     {us['energy']:9.1f} us per evaluation")
    print(f"model + energy      {parts:9.1f} us")
    print(f"C++ loop            {us['cpp']:9.1f} us per step   overhead over model + energy: "
          f"{100 * (us['cpp'] / parts - 1):+.1f}%")
    print(f"Python loop         {us['python']:9.1f} us per step   C++ speed-up: {us['python'] / us['cpp']:.2f}x")
    print(f"acceptance (C++)    {acceptance:.4f}")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    topology, positions = systems.peptide_from_sequence("A")
    system = systems.create_system(topology)
    platform = mm.Platform.getPlatformByName(args.platform)
    scratch, x0 = minimized_start(system, positions, platform)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = openmm_timewarp.model_file.resolve_model_path(args.model) if args.model else default_model(tmp)
        integrator = openmm_timewarp.TimewarpIntegrator(model_file, topology, args.temperature, random_seed=1,
                                                        proposals_per_batch=args.batch, adaptive_batch_size=False)
        context = mm.Context(system, integrator, platform)
        model = torch.jit.load(model_file)
        elements = list(model.elements())
        types = torch.tensor([elements.index(a.element.symbol) for a in topology.atoms()])
        # Warm up both copies of the model: TorchScript profiles and optimizes a graph on its first calls.
        context.setPositions(x0)
        integrator.step(4 * args.batch)
        for _ in range(4):
            model(torch.from_numpy(x0), types, args.batch)
        timings = time_repeats(args, model, types, integrator, context, scratch, x0)
    report(args, timings, system.getNumParticles(), integrator.getAcceptanceRate())


if __name__ == "__main__":
    main()
