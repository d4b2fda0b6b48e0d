"""Would backbone pivots gain from relaxing as they turn? Two measurements on one peptide, before any of
it goes into the C++ integrator, in Python against OpenMM's energies.

Issue 20 asks whether a pivot should arrive with its surroundings adjusted.  (1) The cheapest such
move, nonequilibrium candidate Monte Carlo (NCMC) of the shipped model's pivots, against rigid
pivots.  (2) What any relaxation of the fast coordinates could buy at best, so what a learned
flow over them could: for rigid pivots into another basin, the energy change before and after
minimising everything but the heavy-atom torsions (restrained at their values), around the pivot
only and in the whole molecule, both states minimised alike.

(1) NCMC.

A pivot of residue r draws a target (phi*, psi*) from the model's learned density g_r, as the
shipped kernel does, and sets Delta = wrap(target - (phi, psi)(x0)).  NCMC applies Delta in K equal
rigid turns (N's side of N-CA and C's side of CA-C about those bonds, C-alpha's fragment fixed), with
n velocity Verlet steps between consecutive turns, from Maxwell-Boltzmann momenta p0:

    T, V^n, T, V^n, ..., V^n, T        (K turns, K - 1 relaxation blocks)

Every stage preserves phase-space volume, turns leave momenta alone, and the sequence is a
palindrome, so the reverse move from (x_K, -p_K), which must draw the target wrap((phi, psi)(x_K) -
Delta), retraces the path.  The Metropolis-Hastings acceptance is

    min(1, exp(-beta (H(x_K, p_K) - H(x0, p0))) g_r((phi, psi)(x_K) - Delta) / g_r(target)),

and K = 1 is the rigid pivot (n is then unused).  The momenta are fictitious, so their masses are
free: hydrogens get ``--hydrogen-mass`` so that 2 fs steps are stable.

Reported per protocol (K x n), from the same start states (a Timewarp chain of the peptide) and the
same number of proposals: the mean acceptance probability, that of the proposals that move the
pivoted residue to another basin, the force evaluations per proposal, and accepted basin changes
per 1,000 force evaluations, which is what a chain buys with its time when energies dominate.

(2) The relaxation bound.  Every heavy-atom torsion of the bond graph is restrained (1,000 kJ/mol/rad^2,
its own force group) at its value in the state being minimised; bond lengths, angles and hydrogens
are free.  "Local" frees only the atoms of the pivoted residue and its two neighbours (the others
get mass 0, which OpenMM's minimiser keeps in place); "side chains turned" restrains only the
backbone torsions (about N-CA, CA-C and C-N), so side-chain torsions relax too.  Reported: beta dU
of the rigid pivot; of the pivot with the best shift of its N-CA-C angle within 12 degrees (chosen
knowing the energy: a bound for any deterministic angle correction); and of the relaxed pairs
(unrestrained energies of the minimised pivot and the minimised start, minimised alike).

    python -u benchmarks/relaxed_pivots.py --sequence IELT --protocols 1x0 4x5 8x5 8x10 16x10
"""
from __future__ import annotations

import argparse
import json
import math
import warnings
from typing import Dict, List, Tuple

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE
from openmm_timewarp.domain import ModelDomainWarning
from openmm_timewarp.integrator import TimewarpIntegrator
from openmm_timewarp.model_file import DEFAULT_MODEL, ModelFile
from openmm_timewarp.proposals.backbone import BackboneProposal
from openmm_timewarp.proposals.geometry import dihedral, rotation_matrices, wrap_angle
from openmm_timewarp.proposals.rebuild import kernel_from_model_file
from openmm_timewarp.proposals.residues import backbone_angles
from openmm_timewarp.proposals.side_chains import turn_torsion_rows

KT = (unit.MOLAR_GAS_CONSTANT_R * TEMPERATURE).value_in_unit(unit.kilojoule_per_mole)


def backbone_kernel(model: str) -> BackboneProposal:
    """The backbone pivot kernel of a model file (alone or the first kernel of a mixture)."""
    kernel = kernel_from_model_file(ModelFile.open(model).path)[0]
    for candidate in [kernel] + list(getattr(kernel, "kernels", [])):
        if isinstance(candidate, BackboneProposal):
            return candidate
    raise SystemExit(f"{model} has no backbone pivot kernel")


class Pivots:
    """The turns and target densities of one molecule's backbone pivots."""

    def __init__(self, kernel: BackboneProposal, x: np.ndarray, types: torch.Tensor) -> None:
        self.kernel = kernel
        backbone, sides, features = kernel.residues(torch.tensor(x), types)
        self.backbone, self.sides = backbone, sides
        with torch.no_grad():
            self.params = kernel.density.mixture(features)
        self.phi_free = sides[:, 0].any(1)

    def angles(self, x: np.ndarray, r: int) -> Tuple[float, float]:
        phi, psi = backbone_angles(torch.tensor(x), self.backbone)
        return float(phi[r]), float(psi[r])

    def log_g(self, r: int, phi: float, psi: float) -> float:
        params = tuple(p[r:r + 1] for p in self.params)
        with torch.no_grad():
            return float(self.kernel.density.log_prob(params, torch.tensor([phi], dtype=torch.float64),
                                                      torch.tensor([psi], dtype=torch.float64),
                                                      self.phi_free[r:r + 1]))

    def sample(self, r: int, generator: torch.Generator) -> Tuple[float, float]:
        params = tuple(p[r:r + 1] for p in self.params)
        normals = torch.randn(1, 2, dtype=torch.float64, generator=generator)
        uniforms = torch.rand(1, 4, dtype=torch.float64, generator=generator)
        with torch.no_grad():
            phi, psi = self.kernel.density.sample_from(params, normals, uniforms)
        return float(phi), float(psi)

    def turn(self, x: np.ndarray, r: int, d_phi: float, d_psi: float) -> np.ndarray:
        """Turn N's side of N-CA by -d_phi and C's side of CA-C by +d_psi: phi += d_phi, psi += d_psi."""
        atoms = self.backbone[r]
        y = torch.tensor(x)[None]
        for bond, side, angle in (((1, 2), 0, -d_phi), ((2, 3), 1, d_psi)):
            y = turn_torsion_rows(y, atoms[list(bond)][None], self.sides[r, side][None],
                                  torch.tensor([angle], dtype=torch.float64))
        return y[0].numpy()

    def bend(self, x: np.ndarray, r: int, delta: float) -> np.ndarray:
        """Open residue r's N-CA-C angle by ``delta``: C's side turns about the normal of the N-CA-C plane
        through C-alpha."""
        xt = torch.tensor(x)
        atoms = self.backbone[r]
        centre = xt[atoms[2]]
        normal = torch.linalg.cross(xt[atoms[1]] - centre, xt[atoms[3]] - centre)
        turn = rotation_matrices((normal / torch.linalg.norm(normal))[None], torch.tensor([delta], dtype=torch.float64))
        relative = xt - centre
        y = relative.clone()
        mask = self.sides[r, 1]
        y[mask] = relative[mask] @ turn[0].T
        return (y + centre).numpy()


class Dynamics:
    """Energies, forces and velocity Verlet of one System, with fictitious masses for the momenta."""

    def __init__(self, system: mm.System, topology, hydrogen_mass: float) -> None:
        self.context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        # Hydrogens get hydrogen_mass, taken from their bonded heavy atom: the System's own HMR.
        heavy_h = systems.create_system(topology, hydrogen_mass=hydrogen_mass)
        masses = [heavy_h.getParticleMass(i).value_in_unit(unit.dalton) for i in range(heavy_h.getNumParticles())]
        self.masses = np.array(masses)[:, None]
        self.evaluations = 0

    def energy(self, x: np.ndarray, count: bool = True) -> float:
        """Potential energy; ``count=False`` for the start state's, which a chain already knows."""
        self.context.setPositions(x)
        self.evaluations += int(count)
        return self.context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    def forces(self, x: np.ndarray) -> Tuple[np.ndarray, float]:
        self.context.setPositions(x)
        self.evaluations += 1
        state = self.context.getState(getEnergy=True, getForces=True)
        return (state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
                state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))

    def kinetic(self, v: np.ndarray) -> float:
        return 0.5 * float((self.masses * v * v).sum())

    def verlet(self, x: np.ndarray, v: np.ndarray, steps: int, dt: float) -> Tuple[np.ndarray, np.ndarray]:
        f, _ = self.forces(x)
        for _ in range(steps):
            v = v + 0.5 * dt * f / self.masses
            x = x + dt * v
            f, u = self.forces(x)
            if not math.isfinite(u):
                break
            v = v + 0.5 * dt * f / self.masses
        return x, v


def ncmc_move(dynamics: Dynamics, pivots: Pivots, x0: np.ndarray, r: int, target: Tuple[float, float], turns: int,
              relax: int, dt: float, rng: np.random.Generator) -> Tuple[float, np.ndarray]:
    """One NCMC pivot of residue r towards ``target``: its log acceptance and end positions."""
    phi0, psi0 = pivots.angles(x0, r)
    d_phi = float(wrap_angle(torch.tensor(target[0] - phi0))) if bool(pivots.phi_free[r]) else 0.0
    d_psi = float(wrap_angle(torch.tensor(target[1] - psi0)))
    v = rng.standard_normal(x0.shape) * np.sqrt(KT / dynamics.masses)
    h0 = dynamics.energy(x0, count=False) + dynamics.kinetic(v)
    x = x0
    for k in range(turns):
        x = pivots.turn(x, r, d_phi / turns, d_psi / turns)
        if k < turns - 1:
            x, v = dynamics.verlet(x, v, relax, dt)
    h1 = dynamics.energy(x) + dynamics.kinetic(v)
    phi1, psi1 = pivots.angles(x, r)
    reverse = (float(wrap_angle(torch.tensor(phi1 - d_phi))), float(wrap_angle(torch.tensor(psi1 - d_psi))))
    forward = (float(wrap_angle(torch.tensor(phi0 + d_phi))), float(wrap_angle(torch.tensor(psi0 + d_psi))))
    log_alpha = -(h1 - h0) / KT + pivots.log_g(r, *reverse) - pivots.log_g(r, *forward)
    return (log_alpha if math.isfinite(log_alpha) else -math.inf), x


class Relaxation:
    """Minimisation of all but the heavy-atom torsions, in the whole molecule or around one residue."""

    def __init__(self, system: mm.System, topology) -> None:
        neighbours: Dict[int, List[int]] = {a.index: [] for a in topology.atoms()}
        heavy = {a.index for a in topology.atoms() if a.element.symbol != "H"}
        for a, b in topology.bonds():
            neighbours[a.index].append(b.index)
            neighbours[b.index].append(a.index)
        self.quads = sorted({min((a, b, c, d), (d, c, b, a)) for b in heavy for c in neighbours[b] if c in heavy
                             for a in neighbours[b] if a in heavy and a != c
                             for d in neighbours[c] if d in heavy and d not in (b, a)})
        self.residue_of = [a.residue.index for a in topology.atoms()]
        # Backbone bonds: N-CA, CA-C and the peptide bond C-N, by atom name.
        names = {a.index: a.name for a in topology.atoms()}
        backbone_pairs = ({"N", "CA"}, {"CA", "C"}, {"C", "N"})
        self.backbone_quads = [q for q in self.quads if {names[q[1]], names[q[2]]} in backbone_pairs]
        self.system = system
        self.plain = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))

    def energy(self, x: np.ndarray) -> float:
        self.plain.setPositions(x)
        return self.plain.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    def relaxed_energy(self, x: np.ndarray, residue: int = -1, backbone_only: bool = False) -> float:
        """Unrestrained energy after minimising ``x`` at its heavy-atom torsions (``backbone_only``: at its
        backbone torsions, side chains free); ``residue`` >= 0 (topology index) frees only that residue
        and its neighbours."""
        system = mm.XmlSerializer.clone(self.system)
        restraint = mm.CustomTorsionForce("k*(1 - cos(theta - theta0))")  # k/2 dtheta^2 near theta0
        restraint.addGlobalParameter("k", 1000.0)
        restraint.addPerTorsionParameter("theta0")
        xt = torch.tensor(x)
        for quad in (self.backbone_quads if backbone_only else self.quads):
            p = [xt[i][None] for i in quad]
            restraint.addTorsion(*quad, [float(-dihedral(*p))])
        restraint.setForceGroup(31)
        system.addForce(restraint)
        if residue >= 0:
            for i, r in enumerate(self.residue_of):
                if abs(r - residue) > 1:
                    system.setParticleMass(i, 0.0)
        context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
        context.setPositions(x)
        mm.LocalEnergyMinimizer.minimize(context, 1.0, 2000)
        relaxed = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        return self.energy(relaxed)


def relaxation_bound(system: mm.System, topology, pivots: Pivots, states, proposals: int, seed: int) -> Dict:
    """beta dU of rigid pivots into another basin: as proposed, and with both states relaxed."""
    relax = Relaxation(system, topology)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    rows = []
    for x0 in states:
        tried = 0
        while tried < proposals:
            r = int(rng.integers(len(pivots.backbone)))
            target = pivots.sample(r, generator)
            phi0, psi0 = pivots.angles(x0, r)
            d_phi = float(wrap_angle(torch.tensor(target[0] - phi0))) if bool(pivots.phi_free[r]) else 0.0
            x1 = pivots.turn(x0, r, d_phi, float(wrap_angle(torch.tensor(target[1] - psi0))))
            labels = [int(analysis.assign_basins(*[np.degrees(np.array([[a]])) for a in pivots.angles(x, r)])[0, 0])
                      for x in (x0, x1)]
            if labels[0] == labels[1]:
                continue
            tried += 1
            # Topology residue of pivot r: the C-alpha's residue.
            residue = relax.residue_of[int(pivots.backbone[r, 2])]
            u0 = relax.energy(x0)
            # The best shift of one bond angle, N-CA-C of the pivoted residue, chosen knowing the energy.
            bent = min(relax.energy(pivots.bend(x1, r, math.radians(d))) for d in range(-12, 13))
            rows.append({"to": analysis.BASIN_NAMES[labels[1]],
                         "rigid": (relax.energy(x1) - u0) / KT,
                         "angle": (bent - u0) / KT,
                         "local": (relax.relaxed_energy(x1, residue) - relax.relaxed_energy(x0, residue)) / KT,
                         "full": (relax.relaxed_energy(x1) - relax.relaxed_energy(x0)) / KT,
                         "side_chains": (relax.relaxed_energy(x1, backbone_only=True)
                                         - relax.relaxed_energy(x0, backbone_only=True)) / KT})
    return {"proposals": rows, "torsions_restrained": len(relax.quads), "backbone_torsions": len(relax.backbone_quads)}


def start_states(sequence: str, model: str, count: int, steps_between: int, seed: int):
    """States of a Timewarp chain of ACE-<sequence>-NME, its topology and System."""
    topology, positions = systems.peptide_from_sequence(sequence, seed=seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=seed)
    integrator = TimewarpIntegrator(model, topology, TEMPERATURE, random_seed=seed)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(start)
    states = []
    for _ in range(count):
        integrator.step(steps_between)
        states.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return topology, system, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="IELT", help="one-letter residues between the caps")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped model name")
    parser.add_argument("--protocols", nargs="+", default=["1x0", "4x5", "8x5", "8x10", "16x10"],
                        help="K x n: K turns with n velocity Verlet steps between them (1x0: rigid)")
    parser.add_argument("--states", type=int, default=4, help="start states from a Timewarp chain")
    parser.add_argument("--steps-between", type=int, default=500, help="chain steps between start states")
    parser.add_argument("--proposals", type=int, default=60, help="proposals per state and protocol")
    parser.add_argument("--timestep-fs", type=float, default=2.0)
    parser.add_argument("--hydrogen-mass", type=float, default=4.0, help="fictitious hydrogen mass, amu")
    parser.add_argument("--relaxation-proposals", type=int, default=25,
                        help="basin-changing rigid pivots per state for the relaxation bound (0: skip it)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ModelDomainWarning)
    sequence = args.sequence.upper()
    protocols = [tuple(int(v) for v in p.lower().split("x")) for p in args.protocols]
    topology, system, states = start_states(sequence, args.model, args.states, args.steps_between, args.seed)
    kernel = backbone_kernel(args.model)
    model = ModelFile.open(args.model)
    types = torch.tensor([model.elements.index(a.element.symbol) for a in topology.atoms()], dtype=torch.int64)
    pivots = Pivots(kernel, states[0], types)
    dynamics = Dynamics(system, topology, args.hydrogen_mass)
    residues = len(pivots.backbone)
    print(f"ACE-{sequence}-NME: {residues} pivotable residues, {args.states} start states x {args.proposals} "
          f"proposals per protocol, {args.timestep_fs} fs steps, hydrogens {args.hydrogen_mass} amu", flush=True)
    print(f"{'K x n':>7s} {'accept':>8s} {'accept, basin change':>21s} {'forces/proposal':>16s} "
          f"{'basin changes / 1000 forces':>28s}", flush=True)
    rows: List[Dict] = []
    for turns, relax in protocols:
        # The same residues, targets and momenta for every protocol: differences are the protocol's.
        rng, generator = np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed)
        dynamics.evaluations = 0
        accept, accept_change, changes = [], [], 0
        for x0 in states:
            for _ in range(args.proposals):
                r = int(rng.integers(residues))
                target = pivots.sample(r, generator)
                log_alpha, x1 = ncmc_move(dynamics, pivots, x0, r, target, turns, relax,
                                          args.timestep_fs * 1e-3, rng)
                p = math.exp(min(0.0, log_alpha))
                accept.append(p)
                before = analysis.assign_basins(*[np.degrees(np.array([[a]])) for a in pivots.angles(x0, r)])
                after = analysis.assign_basins(*[np.degrees(np.array([[a]])) for a in pivots.angles(x1, r)])
                if int(before[0, 0]) != int(after[0, 0]):
                    accept_change.append(p)
                    changes += p
        forces = dynamics.evaluations / len(accept)
        row = {"turns": turns, "relax_steps": relax, "acceptance": float(np.mean(accept)),
               "acceptance_basin_change": float(np.mean(accept_change)) if accept_change else None,
               "basin_change_proposals": len(accept_change), "forces_per_proposal": forces,
               "basin_changes_per_1000_forces": 1000.0 * changes / dynamics.evaluations}
        rows.append(row)
        change = row["acceptance_basin_change"]
        print(f"{turns:>3d} x {relax:<3d} {row['acceptance']:8.4f} "
              f"{(f'{change:.4f}' if change is not None else '-'):>12s} (n={len(accept_change):4d}) "
              f"{forces:16.1f} {row['basin_changes_per_1000_forces']:28.3f}", flush=True)
    bound = None
    if args.relaxation_proposals > 0:
        bound = relaxation_bound(system, topology, pivots, states, args.relaxation_proposals, args.seed)
        values = {k: np.array([p[k] for p in bound["proposals"]])
                  for k in ("rigid", "angle", "local", "full", "side_chains")}
        print(f"\nrigid pivots into another basin ({len(values['rigid'])}), beta dU: median [quartiles]; share "
              f"with beta dU < 3 ({bound['torsions_restrained']} heavy-atom torsions restrained when relaxed)", flush=True)
        for k, label in (("rigid", "as proposed"), ("angle", "best N-CA-C shift (+-12)"),
                         ("local", "relaxed around the pivot"),
                         ("full", "relaxed everywhere"),
                         ("side_chains", "and side chains turned")):
            q = np.percentile(values[k], [25, 50, 75])
            print(f"  {label:26s} {q[1]:9.1f} [{q[0]:.1f}, {q[2]:.1f}]  {np.mean(values[k] < 3):.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sequence": sequence, "model": args.model, "settings": vars(args), "rows": rows,
                       "relaxation": bound}, f, indent=1)


if __name__ == "__main__":
    main()
