"""A model file against its compiled (contract v2) copy: cost per proposal and ESS per second, in one run.

For each peptide (default: ACE-ALA-NME and the first validation dipeptide of the split that has a
shipped reference) this measures, on one core and the Reference platform:

* the cost of one energy evaluation (``setPositions`` + ``getState``), microseconds;
* the model's cost per proposal at batch sizes 1, 8 and 32: the TorchScript file (v1) called from
  Python, and the compiled file (v2) through :class:`~openmm_timewarp.proposals.compiled.CompiledModel`
  (topology found once, then the compiled program), as the C++ loaders call them;
* a chain of each file for ``--seconds`` of wall time, model loading and warm-up included, with
  the file's recommended hybrid Monte Carlo, and a third chain of the TorchScript file with the
  compiled file's recommended hybrid Monte Carlo (what the settings alone give, "v1, v2 HMC"):
  steps per second, acceptance, the minimum ESS per
  second over the observables of DESIGN.md section 5 (cos/sin of phi and psi and the indicators of
  the basins the reference populates by at least ``--min-population``, no TICA: references hold
  histograms, not trajectories) and the Ramachandran JSD to the shipped reference; beside them,
  not in the minimum, the ESS per second of the potential energy, which the fast coordinates
  (bonds, angles, hydrogens: what hybrid Monte Carlo moves) dominate, computed after the clock stops.

It prints the ratios v2 / v1 and (v1, v2 HMC) / v1 (goals of issue 19: model time per proposal at
most 2x one energy, ESS per second at least 3x). A chain that never entered a required basin has
ESS 0 there.

    python benchmarks/compiled_model.py                    # dipeptides vs dipeptides-compiled
    python benchmarks/compiled_model.py --seconds 30 --sequences A
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Dict, List

import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE, timewarp_run
from openmm_timewarp.model_file import ModelFile
from openmm_timewarp.proposals.compiled import CompiledModel

SPLIT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "dipeptide_split.json")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="dipeptides", help="the TorchScript model (v1)")
    parser.add_argument("--compiled", default="dipeptides-compiled", help="its compiled copy (v2)")
    parser.add_argument("--sequences", nargs="*", help="one-letter sequences (default: A and a validation dipeptide)")
    parser.add_argument("--split", default=SPLIT, help="dipeptide split, for the default validation dipeptide")
    parser.add_argument("--seconds", type=float, default=120.0, help="wall time of each chain")
    parser.add_argument("--min-population", type=float, default=0.01,
                        help="basins the reference populates at least this much must be visited")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the numbers to this file")
    return parser.parse_args()


def default_sequences(split: str) -> List[str]:
    with open(split) as f:
        validation = json.load(f)["validation"]
    available = set(analysis.available_references())
    return ["A"] + [s for s in validation if analysis.reference_name(s) in available][:1]


def per_call_seconds(call, repeats: int = 5, minimum: float = 0.3) -> float:
    """Median over ``repeats`` of the mean seconds per call over at least ``minimum`` s."""
    call()
    samples = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < minimum:
            call()
            n += 1
        samples.append(elapsed / n)
    return statistics.median(samples)


def model_costs(v1: ModelFile, v2_path: str, topology, positions, system) -> Dict:
    """Microseconds per energy and per proposal of each format at batch 1, 8 and 32."""
    x = torch.tensor(positions.value_in_unit(unit.nanometer), dtype=torch.float64)
    types = torch.tensor([v1.elements.index(a.element.symbol) for a in topology.atoms()])
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    sample = v1.module(x, types, 32)[0].numpy()
    state = {"i": 0}

    def energy():
        context.setPositions(sample[state["i"] % len(sample)])
        context.getState(getEnergy=True)
        state["i"] += 1

    # The energy first: loading a compiled package from Python leaves the upper halves of the vector
    # registers dirty, which slows OpenMM's SSE code about 7x until a vzeroupper runs (the C++
    # loader runs one after every model call; Python cannot).
    costs = {"energy_us": per_call_seconds(energy) * 1e6}
    compiled = CompiledModel(v2_path)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for batch in (1, 8, 32):
            costs[f"v1_us_per_proposal_b{batch}"] = per_call_seconds(lambda: v1.module(x, types, batch)) * 1e6 / batch
            costs[f"v2_us_per_proposal_b{batch}"] = per_call_seconds(
                lambda: compiled.propose(x, types, batch, generator)) * 1e6 / batch
    return costs


def hmc_settings(model: ModelFile) -> Dict:
    """The hybrid Monte Carlo settings ``model`` recommends, as TimewarpIntegrator arguments."""
    recommended = model.integrator_settings
    return dict(hmc_interval=recommended["hmc_interval"], hmc_steps=recommended["hmc_steps"],
                hmc_step_size=recommended["hmc_step_size_ps"] * unit.picosecond,
                hmc_minimum_mass=recommended["hmc_minimum_mass_amu"] * unit.dalton)


def chain(model: str, sequence: str, topology, system, start, reference, basins, args, hmc: Dict) -> Dict:
    """A chain of ``model`` for ``--seconds`` with ``hmc``'s settings, its wall time counted from before
    the model loads."""
    began = time.perf_counter()
    interval = hmc["hmc_interval"]
    hmc = {k: v for k, v in hmc.items() if k != "hmc_interval"}
    run = timewarp_run(model, topology, system, start, args.seconds, args.seed, hmc_interval=interval, hmc=hmc)
    seconds = time.perf_counter() - began
    phi, psi = analysis.backbone_dihedrals(run["frames"], topology)
    n_res = phi.shape[1]
    required = [f"basin:{b}" + ("" if n_res == 1 else f":{r}") for r, b in basins]
    ess = analysis.ess_report(analysis.observables(phi, psi), required)
    jsd = [analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]), reference.histograms[r])
           for r in range(n_res)]
    energy_ess = analysis.effective_sample_size(potential_energies(system, run["frames"]))
    return {"seconds": seconds, "steps": int(run["proposals"]), "steps_per_second": run["proposals"] / seconds,
            "acceptance": run["acceptance"], "ess_min": ess["min"], "ess_per_second": ess["min"] / seconds,
            "jsd": jsd, "missed": [k for k in required if ess.get(k, 0) == 0],
            "energy_ess_per_second": energy_ess / seconds}


def potential_energies(system: mm.System, frames) -> list:
    """The potential energy (kJ/mol) of every frame."""
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    energies = []
    for frame in frames:
        context.setPositions(frame)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    return energies


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    v1 = ModelFile.open(args.model)
    v2 = ModelFile.open(args.compiled)
    results = {}
    for sequence in args.sequences or default_sequences(args.split):
        reference = analysis.load_reference(analysis.reference_name(sequence))
        basins = [(r, b) for r, pops in enumerate(reference.residue_populations)
                  for b, (p, _) in pops.items() if p >= args.min_population]
        topology, positions = systems.peptide_from_sequence(sequence, seed=args.seed)
        system = systems.create_system(topology)
        start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
        costs = model_costs(v1, v2.path, topology, start, system)
        chains = {name: chain(model.path, sequence, topology, system, start, reference, basins, args, hmc_settings(hmc))
                  for name, model, hmc in (("v1", v1, v1), ("v2", v2, v2), ("v1, v2 HMC", v1, v2))}
        results[sequence] = {"costs": costs, "chains": chains}
        e = costs["energy_us"]
        print(f"\nACE-{sequence}-NME ({system.getNumParticles()} atoms): one energy {e:.1f} us")
        for batch in (1, 8, 32):
            a, b = costs[f"v1_us_per_proposal_b{batch}"], costs[f"v2_us_per_proposal_b{batch}"]
            print(f"  batch {batch:2d}: model per proposal v1 {a:8.1f} us ({a / e:5.1f}x energy)   "
                  f"v2 {b:7.1f} us ({b / e:4.1f}x energy)   v1/v2 {a / b:5.1f}x")
        for name, c in chains.items():
            print(f"  {name} chain: {c['steps']} steps in {c['seconds']:.0f} s ({c['steps_per_second']:.0f}/s), acceptance "
                  f"{c['acceptance']:.3f}, min ESS {c['ess_min']:.0f} ({c['ess_per_second']:.2f}/s), energy ESS "
                  f"{c['energy_ess_per_second']:.1f}/s, JSD "
                  f"{' '.join(f'{j:.3f}' for j in c['jsd'])}" + (f", missed {c['missed']}" if c["missed"] else ""))
        for name in ("v2", "v1, v2 HMC"):
            c, base = chains[name], chains["v1"]
            ratio = c["ess_per_second"] / base["ess_per_second"] if base["ess_per_second"] else None
            print(f"  {name} / v1: steps per second {c['steps_per_second'] / base['steps_per_second']:.2f}x, "
                  f"ESS per second " + (f"{ratio:.2f}x" if ratio is not None else "undefined (v1 ESS 0)"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
