"""What makes a rigid backbone pivot of a tetrapeptide expensive, and would a learned shift of the fast coordinates fix it?

Issue 20 asks for a learned move that relaxes the fast coordinates (bond lengths, angles, the
hydrogens' and carbonyls' out-of-plane offsets) as a pivot turns. Two measurements decide whether
that can pay, on pivots drawn as the shipped model draws them, from states of a Timewarp chain
(``relaxed_pivots.start_states``), grouped by the basin the pivoted residue goes to:

1. **Energy terms.** beta dU of each pivot split by OpenMM force: bonds, angles, torsions,
   nonbonded (Lennard-Jones reported apart, from a copy of the NonbondedForce without charges) and
   the implicit solvent. If the cost lies in the nonbonded terms, a relaxation of bonds and angles
   can only buy what moving atoms by a few hundredths of a nm away from a clash buys.
2. **The learned conditional shift.** Every bond length, angle and sibling ("improper") torsion of
   the peptide's Z-matrix (``proposals/zmatrix.py``) is regressed on Fourier features (order 2) of
   the (phi, psi) of the residues within one residue of it, on frames of unbiased MD
   (``long_md.py`` chunks). A pivot of residue r then shifts every coordinate by f_r(new) - f_r(old)
   (unit Jacobian in internal coordinates; the Z-matrix Jacobian ratio enters beta dU), which is the
   exact move a flow conditioned on (phi, psi) with a learned mean would make. Reported: the share
   of each coordinate's variance the features explain (R^2), and beta dU of the shifted pivots
   against the rigid ones.
3. **Local crankshafts**, moves that keep both chain ends in place: the peptide unit between two
   C-alphas (C, O, N, H) turned rigidly about the CA(r)-CA(r+1) axis, and the torsion-space
   crankshaft psi_r + d, phi_(r+1) - d (both volume preserving with a symmetric law of d, so the
   ratio is exp(-beta dU)). Reported per width of d: the mean acceptance, the share of moves that
   change a residue's basin, and accepted basin changes per proposal, against the pivots'.

    python benchmarks/pivot_costs.py --sequence CHRN --md runs/longmd/CHRN
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
from typing import Dict, List

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import analysis
from openmm_timewarp.proposals import zmatrix
from openmm_timewarp.proposals.geometry import COVALENT_RADII_NM, bond_graph, rotation_matrices, wrap_angle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from relaxed_pivots import KT, Pivots, backbone_kernel, start_states  # noqa: E402  (a sibling script)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="CHRN")
    parser.add_argument("--model", default="dipeptides")
    parser.add_argument("--md", help="a long_md.py run folder of the same peptide (for the conditional shift)")
    parser.add_argument("--states", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=200, help="pivots per state")
    parser.add_argument("--ridge", type=float, default=1e-3, help="ridge penalty per frame on the Fourier coefficients")
    parser.add_argument("--crankshaft-widths", type=float, nargs="*", default=[15.0, 30.0, 60.0, 180.0],
                        help="standard deviations (deg) of the crankshaft turns; 180 means uniform")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json")
    return parser.parse_args()


def fourier(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Order-2 Fourier features (..., 12) of (phi, psi), without the constant."""
    c1, s1, c2, s2 = np.cos(phi), np.sin(phi), np.cos(psi), np.sin(psi)
    return np.stack([c1, s1, c2, s2, np.cos(2 * phi), np.sin(2 * phi), np.cos(2 * psi), np.sin(2 * psi),
                     c1 * c2, c1 * s2, s1 * c2, s1 * s2], -1)


class ConditionalShift:
    """Per-coordinate linear regression of the Z-matrix coordinates on the Fourier features of nearby residues."""

    def __init__(self, frames: np.ndarray, pivots: Pivots, z: torch.Tensor, residue_of: np.ndarray,
                 ridge: float) -> None:
        self.z = z
        residues = pivots.backbone.shape[0]
        ca_residue = [residue_of[int(pivots.backbone[r, 2])] for r in range(residues)]
        self.coordinates = [(i, c) for i in range(z.shape[0]) for c in range(3)
                            if z[i, c] >= 0 and (c < 2 or int(z[i, 4]) == 1)]
        internal = zmatrix.to_internal(torch.tensor(frames, dtype=torch.float64), z).numpy()
        angles = np.array([[pivots.angles(f, r) for r in range(residues)] for f in frames])  # (T, R, 2)
        self.window: List[List[int]] = []
        self.coefficients: List[np.ndarray] = []
        self.r_squared: Dict[str, List[float]] = {"bond": [], "angle": [], "improper": []}
        for i, c in self.coordinates:
            y = internal[:, i, c]
            if c == 2:  # an improper sits near +-120 or 180 deg: regress its offset from the circular mean
                y = np.asarray(wrap_angle(torch.tensor(y - math.atan2(np.sin(y).mean(), np.cos(y).mean()))))
            near = {residue_of[i], residue_of[int(z[i, 0])]}
            window = [r for r in range(residues) if any(abs(ca_residue[r] - s) <= 1 for s in near)]
            features = np.concatenate([np.ones((len(y), 1))] + [fourier(angles[:, r, 0], angles[:, r, 1]) for r in window], 1)
            penalty = ridge * len(y) * np.eye(features.shape[1])
            penalty[0, 0] = 0.0
            w = np.linalg.solve(features.T @ features + penalty, features.T @ y)
            self.window.append(window)
            self.coefficients.append(w)
            self.r_squared[("bond", "angle", "improper")[c]].append(float(1 - np.var(y - features @ w) / np.var(y)))

    def shift(self, r: int, old, new) -> torch.Tensor:
        """Shift (1, N, 3) of the internal coordinates for a pivot of residue r from ``old`` to ``new`` (phi, psi)."""
        d = np.zeros((1, self.z.shape[0], 3))
        delta = fourier(*new) - fourier(*old)
        for (i, c), window, w in zip(self.coordinates, self.window, self.coefficients):
            if r in window:
                k = window.index(r)
                d[0, i, c] = w[1 + 12 * k: 13 + 12 * k] @ delta
        return torch.tensor(d)


def crankshafts(pivots: Pivots, states, energy, widths, proposals: int, seed: int) -> Dict:
    """Mean acceptance, basin-change share and accepted basin changes per proposal of both crankshafts."""
    backbone = pivots.backbone
    rng = np.random.default_rng(seed)

    def basin(x, r) -> int:
        phi, psi = pivots.angles(x, r)
        return int(analysis.assign_basins(np.degrees([[phi]]), np.degrees([[psi]]))[0, 0])

    def unit_turn(x, r, d):
        # The atoms between the two C-alphas: C's side of residue r and N's side of residue r + 1.
        a, b = x[int(backbone[r, 2])], x[int(backbone[r + 1, 2])]
        axis = torch.tensor((b - a) / np.linalg.norm(b - a))[None]
        turn = rotation_matrices(axis, torch.tensor([d], dtype=torch.float64))[0].numpy()
        moving = (pivots.sides[r, 1] & pivots.sides[r + 1, 0]).numpy()
        y = x.copy()
        y[moving] = (x[moving] - a) @ turn.T + a
        return y

    def torsion_turn(x, r, d):
        return pivots.turn(pivots.turn(x, r, 0.0, d), r + 1, -d, 0.0)

    out = {}
    for name, move in (("peptide unit about CA-CA", unit_turn), ("psi_r + d, phi_r+1 - d", torsion_turn)):
        for width in widths:
            accepted, changes, both = [], [], []
            for x0 in states:
                x0 = np.asarray(x0)
                u0 = energy(x0)
                for _ in range(proposals):
                    r = int(rng.integers(backbone.shape[0] - 1))
                    d = rng.uniform(-math.pi, math.pi) if width >= 180 else math.radians(rng.normal(0.0, width))
                    y = move(x0, r, d)
                    change = basin(x0, r) != basin(y, r) or basin(x0, r + 1) != basin(y, r + 1)
                    probability = math.exp(min(0.0, -(energy(y) - u0)))
                    accepted.append(probability)
                    changes.append(change)
                    both.append(probability * change)
            out[f"{name}, {width:.0f} deg"] = {"acceptance": float(np.mean(accepted)), "basin_changes": float(np.mean(changes)),
                                               "accepted_basin_changes": float(np.mean(both))}
    return out


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    topology, system, states = start_states(args.sequence, args.model, args.states, 500, seed=1)
    names = []
    for k, force in enumerate(system.getForces()):
        force.setForceGroup(k)
        names.append(type(force).__name__)
    # Lennard-Jones alone: a copy of the NonbondedForce without charges, in a group of its own.
    lennard_jones = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(
        next(f for f in system.getForces() if isinstance(f, mm.NonbondedForce))))
    for i in range(lennard_jones.getNumParticles()):
        _, sigma, epsilon = lennard_jones.getParticleParameters(i)
        lennard_jones.setParticleParameters(i, 0.0, sigma, epsilon)
    for i in range(lennard_jones.getNumExceptions()):
        a, b, _, sigma, epsilon = lennard_jones.getExceptionParameters(i)
        lennard_jones.setExceptionParameters(i, a, b, 0.0, sigma, epsilon)
    lennard_jones.setForceGroup(len(names))
    system.addForce(lennard_jones)
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))

    def terms(x) -> np.ndarray:
        context.setPositions(x)
        return np.array([context.getState(getEnergy=True, groups={k}).getPotentialEnergy()
                         .value_in_unit(unit.kilojoule_per_mole) for k in range(len(names) + 1)]) / KT

    elements = [a.element.symbol for a in topology.atoms()]
    kernel = backbone_kernel(args.model)
    types = torch.tensor([kernel.element_symbols.index(e) for e in elements])
    pivots = Pivots(kernel, np.asarray(states[0]), types)
    radii = torch.tensor([COVALENT_RADII_NM[e] for e in elements], dtype=torch.float64)
    z = zmatrix.build_zmatrix(bond_graph(torch.tensor(np.asarray(states[0]), dtype=torch.float64), radii),
                              torch.tensor([e != "H" for e in elements]))
    shift = None
    if args.md:
        frames = np.concatenate([np.load(p)["positions"] for p in sorted(glob.glob(os.path.join(args.md, "chunk_*.npz")))])
        shift = ConditionalShift(frames.astype(np.float64), pivots, z, np.array([a.residue.index for a in topology.atoms()]),
                                 args.ridge)
        print(f"conditional shift fitted on {len(frames)} MD frames; R^2 median / 90% / max:")
        for kind, values in shift.r_squared.items():
            print(f"  {kind:8s} ({len(values)}): {np.median(values):.3f} / {np.quantile(values, 0.9):.3f} / {max(values):.3f}")

    rng, generator = np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed)
    rows = []
    for x0 in states:
        x0 = np.asarray(x0)
        before = terms(x0)
        for _ in range(args.proposals):
            r = int(rng.integers(pivots.backbone.shape[0]))
            target = pivots.sample(r, generator)
            phi0, psi0 = pivots.angles(x0, r)
            d_phi = float(wrap_angle(torch.tensor(target[0] - phi0))) if bool(pivots.phi_free[r]) else 0.0
            x1 = pivots.turn(x0, r, d_phi, float(wrap_angle(torch.tensor(target[1] - psi0))))
            old, new = (phi0, psi0), pivots.angles(x1, r)
            basins = [int(analysis.assign_basins(np.degrees([[a[0]]]), np.degrees([[a[1]]]))[0, 0]) for a in (old, new)]
            delta = terms(x1) - before
            row = {"to": analysis.BASIN_NAMES[basins[1]] if basins[0] != basins[1] else "same basin",
                   "terms": delta.tolist(), "rigid": float(delta[:len(names)].sum()),
                   "log_g": pivots.log_g(r, *old) - pivots.log_g(r, *new)}
            if shift is not None:
                q1 = zmatrix.to_internal(torch.tensor(x1)[None], z)
                q2 = q1 + shift.shift(r, old, new)
                x2 = zmatrix.to_cartesian(q2, z, *zmatrix.frame(torch.tensor(x1), z))[0].numpy()
                log_jacobian = float(zmatrix.log_jacobian(q2, z) - zmatrix.log_jacobian(q1, z))
                row["shifted"] = float(terms(x2)[:len(names)].sum() - before[:len(names)].sum() - log_jacobian)
            rows.append(row)

    columns = names + ["LJ alone"]
    shown = [k for k, n in enumerate(columns) if n != "CMMotionRemover"]
    print("\nmedian beta dU by term: " + ", ".join(columns[k] for k in shown))
    summary = {}
    for group in ("same basin", "alpha_R", "beta", "alpha_L", "PII_L"):
        chosen = [row for row in rows if row["to"] == group]
        if not chosen:
            continue
        terms_median = np.median(np.array([row["terms"] for row in chosen]), 0)
        entry = {"pivots": len(chosen), "median_terms": dict(zip(columns, terms_median.tolist()))}
        line = f"{group:10s} {len(chosen):4d} pivots: " + "  ".join(f"{terms_median[k]:7.1f}" for k in shown)
        for key in ("rigid", "shifted") if shift is not None else ("rigid",):
            cost = np.array([row[key] for row in chosen])
            acceptance = np.mean([min(1.0, math.exp(min(0.0, row["log_g"] - row[key]))) for row in chosen])
            entry[key] = {"median": float(np.median(cost)), "below_3": float(np.mean(cost < 3)), "acceptance": float(acceptance)}
            line += f" | {key}: median {np.median(cost):6.1f}, below 3 kT {np.mean(cost < 3):.3f}, acceptance {acceptance:.4f}"
        summary[group] = entry
        print(line)
    changing = [row for row in rows if row["to"] != "same basin"]
    pivot_rate = sum(math.exp(min(0.0, row["log_g"] - row["rigid"])) for row in changing) / len(rows)
    print(f"\npivots: accepted basin changes per proposal {pivot_rate:.4f}")
    cranks = {}
    if args.crankshaft_widths:
        cranks = crankshafts(pivots, states, lambda x: float(terms(x)[:len(names)].sum()), args.crankshaft_widths,
                             args.proposals // 2, args.seed)
        for name, c in cranks.items():
            print(f"crankshaft, {name}: acceptance {c['acceptance']:.3f}, basin changes {c['basin_changes']:.3f}, "
                  f"accepted basin changes per proposal {c['accepted_basin_changes']:.4f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "r_squared": shift.r_squared if shift else None, "rows": rows,
                       "pivot_accepted_basin_changes": pivot_rate, "crankshafts": cranks}, f)


if __name__ == "__main__":
    main()
