"""The CUDA kernel against the CPU kernels, in one run on one machine.

* MH steps per second and ESS per second (minimum over sin/cos of every backbone phi and psi) of
  the shipped default model on ACE-ALA-NME and on a capped tetrapeptide of the validation split
  (``/work/shared/data/tetrapeptide_split.json``, or ``--tetrapeptide``), on OpenMM's CPU platform
  (the common kernel) and on its CUDA platform (the CUDA kernel), the same seconds each;
* proposals per second of a Timewarp-size flow (an untrained ``TimewarpFlow`` of about 30 M
  parameters: the cost of a proposal does not depend on the weights) on the GPU and on one CPU core.

Where CUDA is unavailable it says why and measures the CPU side only.

    python benchmarks/cuda_speed.py [--seconds 60] [--out FOLDER]

Writes ``cuda_speed.json`` (and prints a table) in ``--out`` when given.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Dict, Optional

import numpy as np
import openmm as mm
import torch
from openmm import app, unit

import openmm_timewarp
from openmm_timewarp import TimewarpIntegrator, analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE, run_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT = "/work/shared/data/tetrapeptide_split.json"


def cuda_unavailable() -> Optional[str]:
    """Why the CUDA kernel cannot run here, or None."""
    if openmm_timewarp.CUDA_KERNEL_UNAVAILABLE is not None:
        return openmm_timewarp.CUDA_KERNEL_UNAVAILABLE
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} has no CUDA device (a CPU build, or no GPU)"
    return None


def peptide(name: str):
    """Topology, minimized positions and System of ACE-ALA-NME or of capped ``name``."""
    if name == "ace-ala-nme":
        pdb = app.PDBFile(os.path.join(ROOT, "examples", "data", "ace-ala-nme.pdb"))
        topology, positions = pdb.topology, pdb.positions
    else:
        topology, positions = systems.peptide_from_sequence(name)
    system = systems.create_system(topology)
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(context)
    return topology, context.getState(getPositions=True).getPositions(asNumpy=True), system


def sampling_speed(topology, positions, system, platform: str, seconds: float, seed: int) -> Dict:
    """MH steps per second and ESS per second of the shipped model on one platform."""
    integrator = TimewarpIntegrator("dipeptides", topology, TEMPERATURE, random_seed=seed, warn_outside_domain=False)
    properties = {"Precision": "mixed"} if platform == "CUDA" else {}
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName(platform), properties)
    context.setPositions(positions)
    integrator.step(50)  # model load, kernel compilation, first batch
    integrator.resetStatistics()
    result = run_for(seconds, lambda: integrator.step(10), context)
    phi, psi = analysis.backbone_dihedrals(result["frames"], topology)
    features = analysis.dihedral_features(phi, psi)
    ess = min(analysis.effective_sample_size(features[:, j]) for j in range(features.shape[1]))
    return {"steps_per_s": integrator.getNumProposed() / result["seconds"], "ess_per_s": ess / result["seconds"],
            "acceptance": integrator.getAcceptanceRate(), "hmc_acceptance": integrator.getHMCAcceptanceRate(),
            "steps": integrator.getNumProposed(), "seconds": result["seconds"]}


def flow_speed(device: str, batch: int, seconds: float, positions: np.ndarray, types: torch.Tensor,
               model_path: str) -> Dict:
    """Proposals per second of the exported flow on ``device`` (the CPU with one thread)."""
    threads = torch.get_num_threads()
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        model = torch.jit.load(model_path, map_location=device)
        x = torch.tensor(positions, dtype=torch.float64, device=device)
        t = types.to(device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        with torch.inference_mode():
            model(x, t, batch)  # warm-up
            sync()
            calls, start = 0, time.perf_counter()
            while calls < 2 or time.perf_counter() - start < seconds:
                model(x, t, batch)
                calls += 1
            sync()
            elapsed = time.perf_counter() - start
        return {"proposals_per_s": calls * batch / elapsed, "batch": batch, "calls": calls}
    finally:
        torch.set_num_threads(threads)


def timewarp_size_flow(directory: str, elements) -> tuple:
    """An untrained flow of about 30 M parameters, exported; its path and parameter count."""
    from openmm_timewarp.proposals.export import export_model
    from openmm_timewarp.proposals.flow import TimewarpFlow

    torch.manual_seed(0)
    flow = TimewarpFlow(list(elements), hidden=448, num_couplings=6, num_blocks=2)
    path = os.path.join(directory, "flow30m.pt")
    export_model(flow, path, lag_ps=500.0, temperature_K=310.0, metadata={"note": "untrained, for timing"})
    return path, sum(p.numel() for p in flow.parameters())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="wall time of each sampling run")
    parser.add_argument("--flow-seconds", type=float, default=10.0, help="wall time of each flow timing")
    parser.add_argument("--tetrapeptide", default=None, help="sequence (default: the first validation one)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="folder for cuda_speed.json")
    args = parser.parse_args(argv)

    reason = cuda_unavailable()
    platforms = ["CPU"] + ([] if reason else ["CUDA"])
    print(f"torch {torch.__version__}, OpenMM {mm.__version__}; CUDA: {'available' if reason is None else 'unavailable: ' + reason}")
    tetrapeptide = args.tetrapeptide or json.load(open(SPLIT))["validation"][0]
    results: Dict = {"torch": torch.__version__, "openmm": mm.__version__, "cuda_unavailable": reason,
                     "gpu": torch.cuda.get_device_name(0) if reason is None else None, "sampling": {}, "flow": {}}
    for name in ("ace-ala-nme", tetrapeptide):
        topology, positions, system = peptide(name)
        for platform in platforms:
            try:
                r = sampling_speed(topology, positions, system, platform, args.seconds, args.seed)
            except Exception as error:  # a failure on one platform is a result, not the end of the run
                r = {"error": f"{type(error).__name__}: {error}"}
            results["sampling"].setdefault(name, {})[platform] = r
            print(f"{name:12s} {platform:5s} " + (f"{r['steps_per_s']:9.1f} MH steps/s  {r['ess_per_s']:8.2f} ESS/s  "
                                                   f"acceptance {r['acceptance']:.2f}" if "error" not in r else r["error"]))
        if "CUDA" in results["sampling"][name] and "error" not in results["sampling"][name]["CUDA"]:
            cpu, gpu = results["sampling"][name]["CPU"], results["sampling"][name]["CUDA"]
            if "error" not in cpu:
                results["sampling"][name]["cuda_over_cpu"] = {"steps": gpu["steps_per_s"] / cpu["steps_per_s"],
                                                              "ess": gpu["ess_per_s"] / max(cpu["ess_per_s"], 1e-12)}
                print(f"{name:12s} CUDA/CPU: {results['sampling'][name]['cuda_over_cpu']['steps']:.2f}x MH steps/s, "
                      f"{results['sampling'][name]['cuda_over_cpu']['ess']:.2f}x ESS/s")

    topology, positions, _ = peptide("ace-ala-nme")
    elements = ["H", "C", "N", "O", "S"]
    types = torch.tensor([elements.index(a.element.symbol) for a in topology.atoms()])
    with tempfile.TemporaryDirectory() as directory:
        path, parameters = timewarp_size_flow(directory, elements)
        results["flow"]["parameters"] = parameters
        x = positions.value_in_unit(unit.nanometer)
        devices = [("cpu", 4)] + ([] if reason else [("cuda:0", 256)])
        for device, batch in devices:
            try:
                r = flow_speed(device, batch, args.flow_seconds, x, types, path)
            except Exception as error:
                r = {"error": f"{type(error).__name__}: {error}"}
            results["flow"]["cpu_one_core" if device == "cpu" else "gpu"] = r
            print(f"flow {parameters / 1e6:.1f} M parameters on {device}: " +
                  (f"{r['proposals_per_s']:.1f} proposals/s (batch {batch})" if "error" not in r else r["error"]))
    flow = results["flow"]
    if "gpu" in flow and "error" not in flow["gpu"] and "error" not in flow["cpu_one_core"]:
        flow["gpu_over_cpu"] = flow["gpu"]["proposals_per_s"] / flow["cpu_one_core"]["proposals_per_s"]
        print(f"flow GPU/CPU core: {flow['gpu_over_cpu']:.0f}x")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "cuda_speed.json"), "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
