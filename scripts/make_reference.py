"""Equilibrium backbone (phi, psi) reference of a capped peptide (ACE-X-NME, ACE-X-Y-NME) by metadynamics.

Two phases, both on the Reference platform with the project's System (amber14 + built-in OBC2,
no constraints) and hydrogen mass repartitioning (4 amu, 2 fs; masses do not change the
configurational distribution), plus a flat-bottom term that keeps every C-alpha L
(``chirality_restraint``; zero for L geometries, so the distribution of the molecule is unchanged:
without it, one build, GM, turned its methionine into D-Met under the bias):

1. **Build**: well-tempered metadynamics on two backbone torsions (``openmm.app.Metadynamics``),
   which fills the basins and the barriers between them until the bias has converged in shape.
   The torsions (:func:`bias_torsions`): phi and psi for one residue; for longer peptides the
   slow ones, the phi of every non-proline residue, then the psi of prolines (whose phi sits in
   the ring), the first two of these.  ``--bias-torsions`` names up to three others where a
   residue has a slow psi too (serine's and threonine's side chains hold their psi).
   Or, with ``--residue-bias``, no build: every residue's (phi, psi) gets the same bias
   -(1 - 1/gamma) F, with F the free energy of ACE-ALA-NME from its shipped reference
   (:func:`residue_bias_grid`).  That bias acts on all backbone torsions at once, psi included,
   which a two-torsion metadynamics cannot do for two residues; residues differ from alanine in
   detail, which costs the reweighting efficiency, not correctness.  ``--residue-bias`` with
   ``--bias-torsions chi1_1 chi1_2`` adds a metadynamics build on side-chain torsions under the
   residue bias, for side chains whose rotamers hold the backbone for nanoseconds (threonine's
   chi1 keeps its residue in alpha_R or beta longer than a 6 ns run).
2. **Production**: the final bias V is frozen as a static tabulated potential and plain
   Langevin dynamics samples exp(-beta (U + V)).  Every saved frame gets the weight
   w = exp(+beta V) (the bias energy is read from its own force group, so the
   weight is exact for the bias the frame was sampled under).  The reweighted histogram
   sum_t w_t [frame t in bin] / sum_t w_t is an unbiased (ratio) estimator of the
   unbiased distribution; there is no quasi-static assumption as with time-dependent bias
   reweighting.  Every residue's (phi, psi) is recorded and gets its own histogram.  Error bars: block averages over ``--blocks`` contiguous blocks of the
   production run (standard error of the block means).  The well-tempered free-energy estimate
   F = -gamma/(gamma - 1) V is stored as an independent cross-check of the populations
   (one residue only, where the bias acts on its own phi and psi).

The run is chunked: each production chunk writes its frames and an OpenMM checkpoint
atomically into the work folder, so rerunning the same command resumes (and a larger
``--production-ns`` extends) the run.  ``--finalize-only`` rewrites the output from the chunks.

Example::

    nohup nice -n 10 python scripts/make_reference.py --sequence A --seed 1 \\
        --production-ns 300 --max-wall-minutes 100 > runs/reference.log 2>&1 &

Several peptides one after another (each resumes where it stopped)::

    python scripts/make_reference.py --sequence AC DE --build-ns 4 --production-ns 8 --chunk-ns 1
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import math
import os
import shlex
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from openmm_timewarp.analysis.basins import BASIN_NAMES, PHI_POSITIVE, assign_basins
from openmm_timewarp.analysis.dihedrals import backbone_dihedral_indices, backbone_dihedrals, to_mdtraj
from openmm_timewarp.analysis.histogram import BIN_EDGES, jensen_shannon, ramachandran_histogram
from openmm_timewarp.analysis.reference import load_reference, reference_name
from openmm_timewarp.data.generate import add_md_arguments, chirality_restraint, code_version
from openmm_timewarp.systems import (FORCEFIELD_FILES, ONE_TO_THREE, create_system,
                                     peptide_from_sequence)

KB = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
UNCONVERGED_JSD = 0.15
"""Half-vs-half JSD above which a reference is reported as not converged (the shipped ones: 0.02-0.11)."""
RESIDUE_BIAS_START_NS = 0.02
"""Equilibration under the bias that ``--residue-bias`` runs have in place of a metadynamics build."""


def log(message: str) -> None:
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {message}", flush=True)


def side_chain_torsion_indices(topology: app.Topology) -> Dict[str, np.ndarray]:
    """Atom quadruplets of every chi1 and chi2, named ``chi1_2`` (chi1 of the second residue after ACE)."""
    dummy = to_mdtraj(np.zeros((topology.getNumAtoms(), 3)), topology)  # mdtraj finds torsions only in a trajectory
    top = dummy.topology
    named = {}
    for order, compute in ((1, md.compute_chi1), (2, md.compute_chi2)):
        for quadruplet in compute(dummy)[0]:
            named[f"chi{order}_{top.atom(int(quadruplet[0])).residue.index}"] = np.asarray(quadruplet, np.int64)
    return named


def bias_torsions(topology: app.Topology, names: Optional[Sequence[str]] = None
                  ) -> List[Tuple[str, np.ndarray]]:
    """The biased torsions, (name, atom quadruplet): ``names`` (e.g. ``["psi1", "phi2", "psi2"]`` or
    ``["chi1_1", "chi1_2"]``, residues counted from 1 after ACE), or by default the rule in the
    module docstring."""
    phi_idx, psi_idx = backbone_dihedral_indices(topology)
    if names:
        available = {f"{kind}{k + 1}": idx[k] for kind, idx in (("phi", phi_idx), ("psi", psi_idx))
                     for k in range(len(idx))}
        available.update(side_chain_torsion_indices(topology))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise ValueError(f"bias torsions {unknown} not in this peptide; choose from {sorted(available)}")
        return [(n, available[n]) for n in names]
    if len(phi_idx) == 1:
        return [("phi", phi_idx[0]), ("psi", psi_idx[0])]
    residues = [r.name for r in topology.residues() if r.name not in ("ACE", "NME")]
    slow = [(f"phi{k + 1}", phi_idx[k]) for k, n in enumerate(residues) if n != "PRO"]
    slow += [(f"psi{k + 1}", psi_idx[k]) for k, n in enumerate(residues) if n == "PRO"]
    return slow[:2]


def torsion_force(indices: np.ndarray) -> openmm.CustomTorsionForce:
    force = openmm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in indices], [])
    return force


def save_atomic(path: str, **arrays) -> None:
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def make_simulation(system: openmm.System, topology: app.Topology, args: argparse.Namespace,
                    seed: int) -> app.Simulation:
    integrator = openmm.LangevinMiddleIntegrator(args.temperature * unit.kelvin,
                                                 args.friction / unit.picosecond,
                                                 args.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    return app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))


def build_bias(args: argparse.Namespace, topology: app.Topology, positions, path: str) -> None:
    """Phase 1: well-tempered metadynamics; saves the final bias grid and state to ``path``.
    With ``--residue-bias`` the residue bias acts throughout and is saved as ``residue_bias``."""
    system = create_system(topology, hydrogen_mass=args.hmr)
    system.addForce(chirality_restraint(topology))
    extra = {}
    if args.residue_bias:
        extra["residue_bias"] = residue_bias_grid(args)
        system.addForce(residue_bias_force(extra["residue_bias"], topology))
    sigma = math.radians(args.sigma_deg)
    variables = [app.BiasVariable(torsion_force(idx), -math.pi, math.pi, sigma, periodic=True,
                                  gridWidth=args.grid) for _, idx in bias_torsions(topology, args.bias_torsions)]
    np.random.seed(args.seed)  # Metadynamics draws its file id from numpy's global generator
    meta = app.Metadynamics(system, variables, args.temperature * unit.kelvin, args.bias_factor,
                            args.height * unit.kilojoule_per_mole, int(round(args.hill_ps * 1000 / args.timestep_fs)))
    sim = make_simulation(system, topology, args, args.seed)
    sim.context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(sim.context)
    sim.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
    steps = int(round(args.build_ns * 1e6 / args.timestep_fs))
    n_chunks = 20
    start = time.time()
    for k in range(n_chunks):
        meta.step(sim, steps // n_chunks)
        check_stable(sim.context.getState(getEnergy=True), topology, args, args.build_ns * (k + 1) / n_chunks, "the build")
        free = meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
        log(f"build {args.build_ns * (k + 1) / n_chunks:.2f} ns, {time.time() - start:.0f} s, "
            f"free-energy range {free.max() - free.min():.1f} kJ/mol")
    gamma = args.bias_factor
    # getFreeEnergy() = -gamma/(gamma-1) * V on the grid [cv2, cv1]; recover V from it.
    bias = -np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)) * (gamma - 1) / gamma
    save_atomic(path, bias=bias, checkpoint=np.frombuffer(sim.context.createCheckpoint(), np.uint8),
                seconds=time.time() - start, **extra)
    log(f"build done: bias range {bias.min():.1f}..{bias.max():.1f} kJ/mol")


def residue_bias_grid(args: argparse.Namespace, cap_kj_mol: float = 35.0) -> np.ndarray:
    """-(1 - 1/gamma) F(phi, psi) of ACE-ALA-NME on a periodic 37 x 37 grid ``[psi, phi]``.

    F comes from the shipped 36 x 36 reference histogram, averaged over the four bins around each
    grid point and capped ``cap_kj_mol`` above its minimum (empty bins); the grid has 37 points
    per axis, at the bin corners, the last equal to the first as periodic splines need.  ``--grid``
    does not apply."""
    histogram = load_reference("ace-ala-nme_310K").histograms[0]  # [phi_bin, psi_bin]
    corners = 0.25 * (histogram + np.roll(histogram, 1, 0) + np.roll(histogram, 1, 1)
                      + np.roll(histogram, 1, (0, 1)))  # corners[i, j] at (-180 + 10 i, -180 + 10 j)
    kt = KB * args.temperature
    free = -kt * np.log(np.maximum(corners, corners.max() * math.exp(-cap_kj_mol / kt)))
    bias = -(1.0 - 1.0 / args.bias_factor) * (free - free.min())
    bias = np.pad(bias, ((0, 1), (0, 1)), mode="wrap")
    return bias.T.copy()


def residue_bias_force(bias: np.ndarray, topology: app.Topology) -> openmm.CustomCVForce:
    """The sum over residues of ``bias[psi, phi]`` at each residue's own (phi, psi)."""
    phi_idx, psi_idx = backbone_dihedral_indices(topology)
    terms = [f"table(phi{k + 1}, psi{k + 1})" for k in range(len(phi_idx))]
    force = openmm.CustomCVForce(" + ".join(terms))
    for k in range(len(phi_idx)):
        force.addCollectiveVariable(f"phi{k + 1}", torsion_force(phi_idx[k]))
        force.addCollectiveVariable(f"psi{k + 1}", torsion_force(psi_idx[k]))
    n_psi, n_phi = bias.shape
    force.addTabulatedFunction("table", openmm.Continuous2DFunction(
        n_phi, n_psi, bias.ravel(), -math.pi, math.pi, -math.pi, math.pi, True))
    return force


def residue_bias_start(args: argparse.Namespace, topology: app.Topology, positions, path: str) -> None:
    """The build phase of ``--residue-bias``: the bias grid and a state equilibrated under it."""
    bias = residue_bias_grid(args)
    system = create_system(topology, hydrogen_mass=args.hmr)
    system.addForce(chirality_restraint(topology))
    system.addForce(residue_bias_force(bias, topology))
    sim = make_simulation(system, topology, args, args.seed)
    sim.context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(sim.context)
    sim.context.setVelocitiesToTemperature(args.temperature * unit.kelvin, args.seed)
    sim.step(int(round(RESIDUE_BIAS_START_NS * 1e6 / args.timestep_fs)))
    save_atomic(path, bias=bias, checkpoint=np.frombuffer(sim.context.createCheckpoint(), np.uint8), seconds=0.0)
    log(f"residue bias from ACE-ALA-NME: range {bias.min():.1f}..{bias.max():.1f} kJ/mol")


def frozen_bias_forces(build: Dict[str, np.ndarray], topology: app.Topology, args: argparse.Namespace
                       ) -> List[openmm.CustomCVForce]:
    """The production's static bias: the residue bias, the frozen metadynamics bias, or both."""
    if not has_build(vars(args)):
        return [residue_bias_force(build["bias"], topology)]
    forces = [static_bias_force(build["bias"], bias_torsions(topology, args.bias_torsions))]
    if args.residue_bias:
        forces.append(residue_bias_force(build["residue_bias"], topology))
    return forces


def biased_torsion_names(topology: app.Topology, args: argparse.Namespace) -> List[str]:
    names = []
    if args.residue_bias:
        n = len(backbone_dihedral_indices(topology)[0])
        names = [f"{kind}{k + 1}" for k in range(n) for kind in ("phi", "psi")]
        if not has_build(vars(args)):
            return names
    return names + [name for name, _ in bias_torsions(topology, args.bias_torsions)]


def static_bias_force(bias: np.ndarray, torsions: List[Tuple[str, np.ndarray]]) -> openmm.CustomCVForce:
    """The frozen bias as a CustomCVForce on the biased torsions; same grid layout as Metadynamics
    (``bias[cv2, cv1]`` or ``bias[cv3, cv2, cv1]``: the first torsion varies fastest)."""
    cvs = [f"cv{k + 1}" for k in range(len(torsions))]
    force = openmm.CustomCVForce(f"table({', '.join(cvs)})")
    for cv, (_, idx) in zip(cvs, torsions):
        force.addCollectiveVariable(cv, torsion_force(idx))
    sizes = bias.shape[::-1]
    limits = [-math.pi, math.pi] * len(sizes)
    if len(sizes) == 1:  # the 1D table takes no size
        table = openmm.Continuous1DFunction(bias.ravel(), *limits, True)
    else:
        function = {2: openmm.Continuous2DFunction, 3: openmm.Continuous3DFunction}[len(sizes)]
        table = function(*sizes, bias.ravel(), *limits, True)
    force.addTabulatedFunction("table", table)
    return force


def production(args: argparse.Namespace, topology: app.Topology, build_path: str) -> None:
    """Phase 2: static-bias MD in chunks, resuming from the last complete chunk."""
    build = np.load(build_path)
    system = create_system(topology, hydrogen_mass=args.hmr)
    system.addForce(chirality_restraint(topology))
    group = 31
    for force in frozen_bias_forces(build, topology, args):
        force.setForceGroup(group)
        system.addForce(force)
    chunks = sorted(glob.glob(os.path.join(args.work, "chunk_*.npz")))
    sim = make_simulation(system, topology, args, args.seed)
    # The checkpoint restores positions, velocities and the integrator's random state, so a
    # resumed run continues exactly as an uninterrupted one would.
    last = np.load(chunks[-1]) if chunks else build
    sim.context.loadCheckpoint(last["checkpoint"].tobytes())
    save_steps = int(round(args.save_ps * 1000 / args.timestep_fs))
    frames_per_chunk = int(round(args.chunk_ns * 1000 / args.save_ps))
    n_total = int(round(args.production_ns / args.chunk_ns))
    start = time.time()
    for k in range(len(chunks), n_total):
        if (time.time() - start) / 60 > args.max_wall_minutes:
            log(f"wall-time limit reached after chunk {k}; rerun the command to continue")
            break
        positions = np.empty((frames_per_chunk, topology.getNumAtoms(), 3), np.float32)
        bias = np.empty(frames_per_chunk)
        for i in range(frames_per_chunk):
            sim.step(save_steps)
            state = sim.context.getState(getEnergy=True, getPositions=True, groups={group})
            positions[i] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            bias[i] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            check_stable(state, topology, args, k * args.chunk_ns + (i + 1) * args.save_ps / 1000)
        phi, psi = backbone_dihedrals(positions, topology)
        save_atomic(os.path.join(args.work, f"chunk_{k:05d}.npz"), phi=phi.astype(np.float32),
                    psi=psi.astype(np.float32), bias=bias.astype(np.float32),
                    checkpoint=np.frombuffer(sim.context.createCheckpoint(), np.uint8))
        elapsed = time.time() - start
        done = (k + 1 - len(chunks)) * args.chunk_ns
        log(f"production chunk {k + 1}/{n_total}: {(k + 1) * args.chunk_ns:.1f} ns, "
            f"{done / elapsed * 60:.2f} ns/min")
        if (k + 1) % args.finalize_every == 0:
            finalize(args)


def check_stable(state: openmm.State, topology: app.Topology, args: argparse.Namespace, ns: float,
                 phase: str = "production") -> None:
    """Stop before a chunk that blew up is saved: a biased molecule can reach strained geometries
    where the step is unstable (two of three TT runs with a chi1 bias, at 2 fs, heated to 10^10 kJ/mol)."""
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    limit = 10.0 * 1.5 * topology.getNumAtoms() * KB * args.temperature  # ten times the expected value
    if not math.isfinite(kinetic) or kinetic > limit:
        raise SystemExit(f"the integration blew up in {phase} at {ns:.3f} ns (kinetic energy {kinetic:.3g} kJ/mol), "
                         "before saving it: start again in a new --work with a smaller --timestep-fs")


def block_populations(labels: np.ndarray, weights: np.ndarray, n_blocks: int
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted basin populations, their block standard errors, and the per-block values."""
    names = list(BASIN_NAMES)
    n = len(labels) // n_blocks * n_blocks
    per_block = np.empty((n_blocks, len(names) + 1))
    for b, (lab, w) in enumerate(zip(np.split(labels[:n], n_blocks), np.split(weights[:n], n_blocks))):
        for i in range(len(names)):
            per_block[b, i] = w[lab == i].sum() / w.sum()
        per_block[b, -1] = sum(per_block[b, names.index(p)] for p in PHI_POSITIVE)
    total = np.array([weights[labels == i].sum() for i in range(len(names))]) / weights.sum()
    total = np.append(total, sum(total[names.index(p)] for p in PHI_POSITIVE))
    errors = per_block.std(axis=0, ddof=1) / math.sqrt(n_blocks)
    return total, errors, per_block


def wt_populations(bias: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """Basin populations from the well-tempered estimate F = -gamma/(gamma - 1) V on the grid."""
    n_psi, n_phi = bias.shape
    # The periodic grid repeats its first point as its last: drop it once on each axis.
    grid = np.linspace(-180.0, 180.0, n_phi)[:-1]
    psi_grid = np.linspace(-180.0, 180.0, n_psi)[:-1]
    free = -args.bias_factor / (args.bias_factor - 1) * bias[:-1, :-1]
    p = np.exp(-(free - free.min()) / (KB * args.temperature))
    phi, psi = np.meshgrid(grid, psi_grid)
    labels = assign_basins(phi, psi)
    pops = np.array([p[labels == i].sum() for i in range(len(BASIN_NAMES))]) / p.sum()
    return np.append(pops, sum(pops[list(BASIN_NAMES).index(x)] for x in PHI_POSITIVE))


def load_production(work: str, temperature: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(phi, psi, weights, n_chunks) of a run's complete production chunks; phi and psi in degrees,
    one column per residue; weights exp(+beta V) of the frozen bias, the largest 1."""
    chunks = sorted(glob.glob(os.path.join(work, "chunk_*.npz")))
    data = [np.load(c) for c in chunks]
    if not data:
        return np.empty((0, 1)), np.empty((0, 1)), np.empty(0), 0
    bias = np.concatenate([d["bias"] for d in data]).astype(np.float64)
    # One column per residue (chunks of the first, one-residue runs stored flat arrays).
    phi = np.concatenate([d["phi"] for d in data]).astype(np.float64).reshape(len(bias), -1)
    psi = np.concatenate([d["psi"] for d in data]).astype(np.float64).reshape(len(bias), -1)
    return phi, psi, np.exp((bias - bias.max()) / (KB * temperature)), len(chunks)


def kish_size(weights: np.ndarray) -> float:
    """Kish effective number of frames of a weighted sample."""
    return float(weights.sum() ** 2 / (weights ** 2).sum())


def has_build(settings: Dict[str, object]) -> bool:
    """Whether a run (``config.json`` or the arguments as a dict) starts with a metadynamics build:
    all but ``--residue-bias`` alone."""
    return not settings.get("residue_bias") or bool(settings.get("bias_torsions"))


def build_ns(settings: Dict[str, object]) -> float:
    """Simulated ns before production, from a run's settings (``config.json`` or the arguments)."""
    return settings["build_ns"] if has_build(settings) else RESIDUE_BIAS_START_NS


def write_reference(path: str, phi: np.ndarray, psi: np.ndarray, weights: np.ndarray, n_blocks: int,
                    metadata: Dict[str, object]) -> None:
    """Histograms, basin populations with block errors (``n_blocks`` contiguous blocks) and the
    half-vs-half JSD of weighted frames, written atomically to ``path`` with ``metadata``."""
    per_residue = [block_populations(assign_basins(phi[:, r], psi[:, r]), weights, n_blocks)
                   for r in range(phi.shape[1])]
    pops, errors, per_block = (np.array([x[i] for x in per_residue]) for i in range(3))
    names = list(BASIN_NAMES) + ["phi>0"]
    metadata.update({
        "n_frames": int(len(phi)), "n_blocks": int(n_blocks),
        "kish_effective_frames": kish_size(weights),
        "basins": names,
        "populations": [dict(zip(names, p.round(6).tolist())) for p in pops],
        "population_errors": [dict(zip(names, e.round(6).tolist())) for e in errors],
        "jsd_between_halves": [jsd_between_halves(phi[:, r], psi[:, r], weights) for r in range(phi.shape[1])],
        "code_version": code_version(),
        "written_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    histograms = np.array([ramachandran_histogram(phi[:, r], psi[:, r], weights) for r in range(phi.shape[1])])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, histogram=histograms, bin_edges_deg=BIN_EDGES, basin_names=np.array(names),
                        populations=pops, population_errors=errors, block_populations=per_block,
                        metadata=json.dumps(metadata))
    os.replace(tmp, path)
    summary = "; ".join(", ".join(f"{n} {p:.4f}+-{e:.4f}" for n, p, e in zip(names, pr, er))
                        for pr, er in zip(pops, errors))
    log(f"wrote {path}: {metadata['production_ns']:.1f} ns production; {summary}")
    noisy = max(metadata["jsd_between_halves"])
    if noisy > UNCONVERGED_JSD:
        log(f"WARNING: the two halves of the production differ by a JSD of {noisy:.2f} (> {UNCONVERGED_JSD}): "
            "not converged, not a usable reference yet (extend it with a larger --production-ns)")


def system_metadata(topology: app.Topology, sequence: str, args: argparse.Namespace) -> Dict[str, object]:
    """What defines the sampled distribution: the peptide, force field, solvent and temperature."""
    return {
        "sequence": sequence,
        "peptide": "-".join(r.name for r in topology.residues()),
        "forcefield": list(FORCEFIELD_FILES), "solvent": "GBSAOBCForce OBC2 (mbondi2, eps 1/78.5, ACE SA)",
        "constraints": None, "temperature_K": args.temperature, "friction_per_ps": args.friction,
        "timestep_fs": args.timestep_fs, "hydrogen_mass_amu": args.hmr, "platform": "Reference",
    }


def finalize(args: argparse.Namespace) -> None:
    """Write the small reference file from all complete production chunks."""
    phi, psi, weights, n_chunks = load_production(args.work, args.temperature)
    if n_chunks < 2:
        log("finalize: fewer than 2 production chunks, nothing written")
        return
    build = np.load(os.path.join(args.work, "build.npz"))
    names = list(BASIN_NAMES) + ["phi>0"]
    production_ns = n_chunks * args.chunk_ns
    start_ns = build_ns(vars(args))
    topology, _ = peptide_from_sequence(args.sequence, seed=args.seed)
    metadata = system_metadata(topology, args.sequence, args)
    metadata.update({
        "method": method(args),
        "biased_torsions": biased_torsion_names(topology, args),
        "estimator": "histogram of production frames weighted by exp(+beta V_frozen); "
                     "errors: standard error of block means",
        "bias_factor": args.bias_factor, "hill_height_kJ_mol": args.height,
        "hill_width_deg": args.sigma_deg, "hill_interval_ps": args.hill_ps, "grid": args.grid,
        "build_ns": start_ns, "production_ns": production_ns,
        "simulated_ns": start_ns + production_ns, "save_interval_ps": args.save_ps, "seed": args.seed,
        "populations_wt_free_energy": (dict(zip(names, wt_populations(build["bias"], args).round(6).tolist()))
                                       if phi.shape[1] == 1 and not (args.bias_torsions or args.residue_bias) else None),
        "command": production_command(args),
    })
    write_reference(args.out, phi, psi, weights, min(args.blocks, n_chunks), metadata)


def method(args: argparse.Namespace) -> str:
    residue = "every residue's (phi, psi) biased by -(1 - 1/gamma) F of ACE-ALA-NME's reference"
    metadynamics = "well-tempered metadynamics on " + ("the named torsions" if args.bias_torsions else "backbone torsions")
    if args.residue_bias and args.bias_torsions:
        return f"{residue}, plus {metadynamics} under it, then static-bias production"
    return f"{residue if args.residue_bias else metadynamics}, then static-bias production"


def jsd_between_halves(phi: np.ndarray, psi: np.ndarray, weights: np.ndarray) -> float:
    """JSD between the histograms of the first and second halves of the production: a measure of
    the reference's own statistical error (each half has twice the variance of the whole)."""
    half = len(phi) // 2
    first, second = (ramachandran_histogram(phi[s], psi[s], weights[s]) for s in (slice(0, half), slice(half, None)))
    return float(jensen_shannon(first, second))


def saved_command(work: str) -> Optional[str]:
    """The command that ran a work folder's simulation (its command.txt), if it was kept."""
    path = os.path.join(work, "command.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def production_command(args: argparse.Namespace) -> str:
    """The command that ran the simulation (saved in the work folder), else this one."""
    return saved_command(args.work) or " ".join(shlex.quote(a) for a in ["python"] + sys.argv)


def parse_args(argv: List[str]) -> List[argparse.Namespace]:
    """One namespace per ``--sequence``, with its work folder and output file filled in."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", nargs="+", default=["A"],
                        help="one-letter residues between the caps (several: run one after another)")
    parser.add_argument("--seed", type=int, default=1)
    add_md_arguments(parser)
    parser.add_argument("--build-ns", type=float, default=10.0)
    parser.add_argument("--bias-factor", type=float, default=6.0)
    parser.add_argument("--height", type=float, default=1.0, help="initial hill height, kJ/mol")
    parser.add_argument("--sigma-deg", type=float, default=20.0, help="hill width, degrees")
    parser.add_argument("--hill-ps", type=float, default=1.0, help="interval between hills, ps")
    parser.add_argument("--grid", type=int, default=91, help="bias grid points per axis")
    parser.add_argument("--bias-torsions", nargs="+", default=None, metavar="NAME",
                        help="1-3 torsions to bias by metadynamics, e.g. psi1 phi2 psi2 or chi1_1 chi1_2 "
                             "(default: see the module docstring)")
    parser.add_argument("--residue-bias", action="store_true",
                        help="bias every residue's (phi, psi) by ACE-ALA-NME's free energy; alone: no "
                             "metadynamics, with --bias-torsions (side chains only): metadynamics on those too")
    parser.add_argument("--production-ns", type=float, default=300.0)
    parser.add_argument("--chunk-ns", type=float, default=2.0)
    parser.add_argument("--save-ps", type=float, default=0.5, help="frame interval, ps")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--finalize-every", type=int, default=5, help="chunks between outputs")
    parser.add_argument("--max-wall-minutes", type=float, default=1e9, help="per sequence")
    parser.add_argument("--work", default=None, help="default: runs/reference/<name>")
    parser.add_argument("--out", default=None, help="default: openmm_timewarp/reference/<name>.npz")
    parser.add_argument("--finalize-only", action="store_true")
    args = parser.parse_args(argv)
    sequences = [x.upper() for x in args.sequence]
    if args.bias_torsions and not 1 <= len(args.bias_torsions) <= 3:
        parser.error("--bias-torsions: name 1 to 3 torsions")
    if args.residue_bias and any(not n.startswith("chi") for n in args.bias_torsions or []):
        parser.error("--residue-bias already biases every phi and psi: name only side-chain torsions (chi1_K, chi2_K)")
    for sequence in sequences:
        if not sequence or set(sequence) - set(ONE_TO_THREE):
            parser.error(f"--sequence {sequence}: use one-letter codes of {''.join(sorted(ONE_TO_THREE))}")
    if len(sequences) > 1 and (args.work or args.out):
        parser.error("--work and --out name one run: give a single --sequence with them")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    runs = []
    for sequence in sequences:
        run = argparse.Namespace(**vars(args))
        run.sequence = sequence
        name = reference_name(sequence, args.temperature)
        run.work = args.work or os.path.join(root, "runs", "reference", name)
        run.out = args.out or os.path.join(root, "openmm_timewarp", "reference", name + ".npz")
        runs.append(run)
    return runs


def run_one(args: argparse.Namespace) -> None:
    """Build, produce and finalize the reference of one sequence (resuming what exists)."""
    os.makedirs(args.work, exist_ok=True)
    config_path = os.path.join(args.work, "config.json")
    physics: Dict[str, object] = {k: getattr(args, k) for k in (
        "sequence", "seed", "temperature", "friction", "timestep_fs", "hmr", "build_ns", "bias_factor",
        "height", "sigma_deg", "hill_ps", "grid", "chunk_ns", "save_ps", "bias_torsions", "residue_bias")}
    if os.path.exists(config_path):
        with open(config_path) as f:
            previous = json.load(f)
        previous.setdefault("bias_torsions", None)  # runs made before these options used metadynamics
        previous.setdefault("residue_bias", False)  # with the default torsions
        if previous != physics:
            raise SystemExit(f"{args.work} was made with other settings {previous}; use another --work")
    else:
        with open(config_path, "w") as f:
            json.dump(physics, f, indent=1)
    topology, positions = peptide_from_sequence(args.sequence, seed=args.seed)
    build_path = os.path.join(args.work, "build.npz")
    if not args.finalize_only:
        with open(os.path.join(args.work, "command.txt"), "w") as f:
            f.write(" ".join(shlex.quote(a) for a in ["python"] + sys.argv))
        if not os.path.exists(build_path):
            start = build_bias if has_build(vars(args)) else residue_bias_start
            start(args, topology, positions, build_path)
        production(args, topology, build_path)
    finalize(args)


def main(argv: List[str]) -> None:
    for args in parse_args(argv):
        log(f"{args.sequence}: {args.work}")
        run_one(args)


if __name__ == "__main__":
    main(sys.argv[1:])
