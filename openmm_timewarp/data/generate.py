"""Generate MD training pairs (x(t), x(t + tau)) for a capped peptide.

Settings follow DESIGN.md sections 3-4: amber14 + built-in OBC2, no constraints, 310 K,
``LangevinMiddleIntegrator`` with friction 1/ps, hydrogen mass repartitioning to 4 amu and a
2 fs step (stable without constraints; masses change the kinetics, not the configurational
distribution), on the Reference platform (the fastest for small peptides on CPUs).  Friction
1/ps is OpenMM's usual choice; it damps less than the 10/ps sometimes used and keeps barrier
crossing close to the inertial regime that Timewarp's data (0.3/ps) had.

Starts are spread over the metastable basins: trajectory i restrains every backbone (phi, psi)
to a basin centre of :data:`START_CENTERS` (the first residue cycles through all of them, from a
place that depends on the sequence, so that alpha_L, C7ax and PII_L, which plain MD at 310 K
rarely reaches, get their share even in a data set of many peptides with few trajectories each), runs
``restraint_ps`` of restrained MD (after turning the torsions rigidly to the centres,
:func:`turn_to_targets`), then ``equilibrate_ps`` of free MD before frames are
recorded.  ``start_basins`` narrows the centres (e.g. to the phi > 0 ones, for data on how long
residues stay there).  Proline cannot reach phi > 0 and only gets the phi < 0 centres.  A trajectory that
blows up (:func:`check_frame`) is rerun with fresh seeds, at most ``MAX_ATTEMPTS`` times.

Each trajectory writes one shard (:mod:`openmm_timewarp.data.storage`); a run skips shards that
are already complete, so rerunning the same command resumes it.  Seeds: trajectory i uses
``seed * 100000 + i + 1`` for its velocities and its integrator (a retry k adds ``k * 50000``).

:func:`generate_many` runs the missing trajectories of several peptides as one pool of tasks
(:func:`~openmm_timewarp.data.cluster.run_tasks`: Dask, or this process for ``workers=1``); where
a trajectory runs does not change what it computes.

Command line (:mod:`openmm_timewarp.cli.generate_data`; ``docs/data-generation.md``)::

    openmm-timewarp generate-data --sequence A --lag-ps 500 --pairs 20000 \\
        --out data/ace-ala-nme --workers 1 --seed 1
    openmm-timewarp generate-data --split tetrapeptide_split.json --limit 10 --pairs 910 \\
        --out data/tetrapeptides
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import math
import os
import subprocess
import time
import zlib
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import openmm
import torch
from openmm import app, unit

from ..analysis.dihedrals import backbone_dihedral_indices
from ..errors import InputError
from ..proposals.geometry import dihedral, far_side
from ..proposals.side_chains import turn_torsion_rows
from ..systems import (FORCEFIELD_FILES, chiral_centers, create_system, inverted_centers, load_pdb,
                       peptide_from_sequence, sequence_of)
from .cluster import run_tasks
from .storage import is_complete, shard_path, write_manifest, write_shard

__all__ = ["START_CENTERS", "Settings", "UnstableMD", "chirality_restraint", "check_frame", "code_version",
           "start_targets", "turn_to_targets", "run_trajectory", "generate", "generate_many"]

log = logging.getLogger("openmm_timewarp.data")

#: (phi, psi) basin centres in degrees used as restrained starting points.
START_CENTERS: Dict[str, Tuple[float, float]] = {
    "beta": (-150.0, 155.0), "PPII": (-70.0, 145.0), "alpha_R": (-70.0, -40.0),
    "C7eq": (-85.0, 75.0), "alpha_L": (60.0, 40.0), "C7ax": (70.0, -70.0),
    "PII_L": (60.0, 180.0),
}
RESTRAINT_K = 500.0  # kJ/mol/rad^2: about 8 degrees r.m.s. at 310 K
CHIRALITY_K = 10000.0  # kJ/mol: well above the basin restraints' pull (up to about 4,000 kJ/mol)
MAX_ATTEMPTS = 3
RETRY_SEED_OFFSET = 50000  # attempt k of trajectory i uses seed * 100000 + k * 50000 + i + 1


class UnstableMD(RuntimeError):
    """An MD trajectory blew up (non-finite or exploding coordinates) or inverted a stereocentre."""


def code_version() -> str:
    """``git describe`` of the source tree, or ``"unknown"`` outside a git checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                             cwd=os.path.dirname(os.path.abspath(__file__)), capture_output=True,
                             text=True, check=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Physical and sampling settings common to all trajectories of a data set.

    Times are in ps (``timestep_fs`` in fs), temperature in K, masses in amu, friction in 1/ps.
    ``lag_ps`` and ``trajectory_ps`` must be multiples of ``frame_interval_ps``, which must be a
    multiple of the time step.
    """

    sequence: str
    lag_ps: float = 500.0
    frame_interval_ps: float = 50.0
    trajectory_ps: float = 5000.0
    temperature_K: float = 310.0
    friction_per_ps: float = 1.0
    timestep_fs: float = 2.0
    hydrogen_mass_amu: float = 4.0
    restraint_ps: float = 20.0
    equilibrate_ps: float = 20.0
    seed: int = 1
    pdb: Optional[str] = None
    start_basins: Optional[List[str]] = None

    def __post_init__(self) -> None:
        if self.start_basins is not None:
            unknown = sorted(set(self.start_basins) - set(START_CENTERS))
            if unknown or not self.start_basins:
                raise InputError(f"--start-basins: unknown basin {', '.join(unknown) or '(none given)'}; "
                                 f"choose from {', '.join(START_CENTERS)}")
            object.__setattr__(self, "start_basins", list(self.start_basins))

    def steps(self, ps: float) -> int:
        """Number of time steps in ``ps`` picoseconds, which must be a whole number."""
        n = ps * 1000.0 / self.timestep_fs
        if abs(n - round(n)) > 1e-6:
            raise InputError(f"{ps} ps is not a multiple of the {self.timestep_fs} fs step")
        return int(round(n))

    def frames(self, ps: float) -> int:
        """Number of frame intervals in ``ps`` picoseconds, which must be a whole number."""
        n = ps / self.frame_interval_ps
        if abs(n - round(n)) > 1e-6:
            raise InputError(f"{ps} ps is not a multiple of the {self.frame_interval_ps} ps frame interval")
        return int(round(n))

    @property
    def pairs_per_trajectory(self) -> int:
        return self.frames(self.trajectory_ps) + 1 - self.frames(self.lag_ps)


def _wrap_rad(deg: float) -> float:
    return math.radians((deg + 180.0) % 360.0 - 180.0)


def start_targets(topology: app.Topology, trajectory: int, rng: np.random.Generator,
                  basins: Optional[Sequence[str]] = None) -> List[Tuple[str, float, float]]:
    """Basin centre (name, phi, psi) that trajectory ``trajectory`` restrains each residue to, among
    ``basins`` (names of :data:`START_CENTERS`; default all).  Proline takes only centres with
    phi < 0: those of ``basins``, or all of them if ``basins`` has none."""
    residues = [r for r in topology.residues() if r.name not in ("ACE", "NME")]
    names = list(basins or START_CENTERS)
    # The cycle starts at a place fixed by the sequence, so that a data set of many peptides with a
    # few trajectories each still starts its first residues in every basin.
    shift = zlib.crc32("-".join(r.name for r in residues).encode())
    targets = []
    for k, residue in enumerate(residues):
        allowed = [n for n in names if residue.name != "PRO" or START_CENTERS[n][0] < 0]
        if not allowed:
            allowed = [n for n in START_CENTERS if START_CENTERS[n][0] < 0]
        name = allowed[(trajectory + shift) % len(allowed)] if k == 0 else allowed[rng.integers(len(allowed))]
        targets.append((name, *START_CENTERS[name]))
    return targets


def _restraint(topology: app.Topology, targets: Sequence[Tuple[str, float, float]]) -> openmm.Force:
    force = openmm.CustomTorsionForce(
        f"0.5*{RESTRAINT_K}*d^2; d=min(dt, 2*{math.pi}-dt); dt=abs(theta-theta0)")
    force.addPerTorsionParameter("theta0")
    for (_, phi, psi), phi_idx, psi_idx in zip(targets, *backbone_dihedral_indices(topology)):
        force.addTorsion(*map(int, phi_idx), [_wrap_rad(phi)])
        force.addTorsion(*map(int, psi_idx), [_wrap_rad(psi)])
    return force


def chirality_restraint(topology: app.Topology) -> openmm.Force:
    """Keep every C-alpha L while the basin restraints pull (phi, psi) far from where the peptide
    was built: without it the restrained minimization can invert a stereocentre, the cheapest way
    to a phi > 0 target. The improper N-CA-C-CB is about -125 degrees for L and +125 for D; the
    penalty starts at -150 and -30 degrees (sin = -0.5), so both ways through a planar centre cost
    at least CHIRALITY_K / 4. It makes inversion rare, not impossible (the stiff minimization can
    still step through), so :func:`check_frame` refuses D frames and the trajectory is retried.
    :func:`turn_to_targets` runs first, so the restraints start close to satisfied."""
    force = openmm.CustomTorsionForce(f"{CHIRALITY_K}*max(0, sin(theta) + 0.5)^2")
    for ca, n, c, cb in chiral_centers(topology):
        force.addTorsion(n, ca, c, cb, [])
    return force


def turn_to_targets(topology: app.Topology, positions: np.ndarray,
                    targets: Sequence[Tuple[str, float, float]]) -> np.ndarray:
    """``positions`` (nm) with every residue's phi and psi turned rigidly to its target (degrees),
    the C-terminal side of N-CA and of CA-C turning; a torsion whose bond lies in a ring (proline's
    phi) keeps its value. Turning before the restrained minimization leaves the restraints little
    to pull, so the minimization has no reason to step a C-alpha through inversion."""
    x = torch.tensor(np.asarray(positions, dtype=np.float64))
    adjacency = torch.zeros(topology.getNumAtoms(), topology.getNumAtoms(), dtype=torch.bool)
    for bond in topology.bonds():
        adjacency[bond[0].index, bond[1].index] = adjacency[bond[1].index, bond[0].index] = True
    for (_, phi, psi), phi_idx, psi_idx in zip(targets, *backbone_dihedral_indices(topology)):
        for quad, target in ((phi_idx, phi), (psi_idx, psi)):
            a, b, c, d = (int(i) for i in quad)
            side = far_side(adjacency, b, c)
            if not bool(side.any()):
                continue
            # geometry.dihedral has the Z-matrix sign, the opposite of IUPAC's phi and psi.
            delta = math.radians(target) + float(dihedral(x[a], x[b], x[c], x[d]))
            x = turn_torsion_rows(x[None], torch.tensor([[b, c]]), side[None],
                                  torch.tensor([delta], dtype=x.dtype))[0]
    return x.numpy()


def _context(system: openmm.System, settings: Settings, seed: int) -> openmm.Context:
    integrator = openmm.LangevinMiddleIntegrator(settings.temperature_K * unit.kelvin,
                                                 settings.friction_per_ps / unit.picosecond,
                                                 settings.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    return openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))


def run_trajectory(task: Tuple[Settings, str, int, str]) -> Dict:
    """Run one trajectory and write its shard.

    Parameters
    ----------
    task : tuple
        ``(settings, topology_pdb, trajectory, out_folder)``; the topology travels as PDB text so
        that tasks pickle cheaply into worker processes.

    Returns
    -------
    dict
        ``trajectory``, ``n_pairs``, ``seconds``, ``start`` (the restrained basin centres).
    """
    settings, topology_pdb, trajectory, folder = task
    started = time.time()
    pdb = app.PDBFile(io.StringIO(topology_pdb))
    topology, positions = pdb.topology, pdb.getPositions(asNumpy=True)
    errors = []
    for attempt in range(MAX_ATTEMPTS):
        # A rare blow-up is retried with seeds no first attempt uses; the shard records the attempt.
        seed = settings.seed * 100000 + attempt * RETRY_SEED_OFFSET + trajectory + 1
        try:
            frames, targets = _sample_frames(settings, topology, positions, trajectory, seed)
            break
        except UnstableMD as error:
            log.warning("%s", error)
            errors.append(str(error))
    else:
        raise UnstableMD(f"trajectory {trajectory} was unstable in all {MAX_ATTEMPTS} attempts: "
                         + "; ".join(errors))
    seconds = time.time() - started
    text = io.StringIO()
    app.PDBFile.writeFile(topology, frames[0] * 10.0, text)
    metadata = dict(dataclasses.asdict(settings), **_common_metadata(topology))
    metadata.update({"trajectory": trajectory, "trajectory_seed": seed, "attempt": attempt, "seconds": seconds,
                     "start": [{"basin": n, "phi": p, "psi": q} for n, p, q in targets],
                     "topology_pdb": text.getvalue()})
    elements = [a.element.symbol for a in topology.atoms()]
    n_pairs = write_shard(shard_path(folder, trajectory), frames, settings.frames(settings.lag_ps),
                          elements, metadata)
    return {"trajectory": trajectory, "n_pairs": n_pairs, "seconds": seconds,
            "start": [n for n, _, _ in targets]}


def _sample_frames(settings: Settings, topology: app.Topology, positions, trajectory: int,
                   seed: int) -> Tuple[np.ndarray, List[Tuple[str, float, float]]]:
    """Restrained relaxation into the chosen basins, free equilibration, then the recorded frames."""
    rng = np.random.default_rng(seed)
    targets = start_targets(topology, trajectory, rng, settings.start_basins)
    system = create_system(topology, hydrogen_mass=settings.hydrogen_mass_amu)
    restrained = copy.deepcopy(system)
    restrained.addForce(_restraint(topology, targets))
    restrained.addForce(chirality_restraint(topology))
    prep = _context(restrained, settings, seed)
    prep.setPositions(turn_to_targets(topology, np.asarray(positions.value_in_unit(unit.nanometer)), targets))
    openmm.LocalEnergyMinimizer.minimize(prep)
    prep.setVelocitiesToTemperature(settings.temperature_K * unit.kelvin, seed)
    prep.getIntegrator().step(settings.steps(settings.restraint_ps))
    state = prep.getState(getPositions=True, getVelocities=True)
    context = _context(system, settings, seed)
    context.setPositions(state.getPositions())
    context.setVelocities(state.getVelocities())
    integrator = context.getIntegrator()
    integrator.step(settings.steps(settings.equilibrate_ps))

    n_frames = settings.frames(settings.trajectory_ps) + 1
    frame_steps = settings.steps(settings.frame_interval_ps)
    frames = np.empty((n_frames, topology.getNumAtoms(), 3), np.float32)
    centers = chiral_centers(topology)
    for i in range(n_frames):
        if i:
            integrator.step(frame_steps)
        frames[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(
            unit.nanometer)
        check_frame(frames[i], frames[0], f"trajectory {trajectory} (start {'/'.join(n for n, _, _ in targets)}, "
                                          f"seed {seed}), frame {i}", centers=centers)
    return frames, targets


def check_frame(frame: np.ndarray, first: np.ndarray, where: str, max_spread_nm: float = 5.0,
                centers: Sequence[Tuple[int, int, int, int]] = ()) -> None:
    """Refuse a frame with non-finite coordinates, one whose atoms spread over more than
    ``max_spread_nm`` beyond the first frame's extent (an integration that blew up), or one in which
    a C-alpha of ``centers`` (:func:`~openmm_timewarp.systems.chiral_centers`) is D (another
    molecule), naming ``where``."""
    inverted = np.flatnonzero(inverted_centers(frame, centers))
    if len(inverted):
        raise UnstableMD(f"MD inverted the C-alpha of chiral centre(s) {inverted.tolist()} in {where} "
                         "(a D-amino acid)")
    if not np.isfinite(frame).all():
        raise UnstableMD(f"MD became unstable in {where}: non-finite coordinates")
    spread = np.ptp(frame, axis=0).max() - np.ptp(first, axis=0).max()
    if spread > max_spread_nm:
        raise UnstableMD(f"MD became unstable in {where}: the molecule spread by {spread:.3g} nm")


def _common_metadata(topology: app.Topology) -> Dict:
    return {"peptide": "-".join(r.name for r in topology.residues()),
            "forcefield": list(FORCEFIELD_FILES),
            "solvent": "implicit OBC2 (openmm.GBSAOBCForce, mbondi2 radii, eps 1 / 78.5, ACE SA)",
            "nonbonded": "NoCutoff", "constraints": None, "integrator": "LangevinMiddleIntegrator",
            "platform": "Reference", "openmm_version": openmm.__version__,
            "code_version": code_version()}


def generate(settings: Settings, out: str, n_pairs: int, workers: int = 1,
             progress: bool = True, scheduler: Optional[str] = None) -> Dict:
    """Generate (or resume) a data set of at least ``n_pairs`` pairs in folder ``out``.

    One peptide's case of :func:`generate_many` (see there for ``workers`` and ``scheduler``).

    Returns
    -------
    dict
        The manifest written to ``out/manifest.json``.

    Raises
    ------
    InputError
        If ``out`` holds data made with other settings, or the PDB file is not ``settings.sequence``.
    UnstableMD
        If a trajectory blew up in every attempt.
    """
    return generate_many([(settings, out)], n_pairs, workers, progress, scheduler)[out]


def generate_many(jobs: Sequence[Tuple[Settings, str]], n_pairs: int, workers: int = 1,
                  progress: bool = True, scheduler: Optional[str] = None) -> Dict[str, Dict]:
    """Generate (or resume) the data sets of several peptides as one pool of trajectory tasks.

    Every missing trajectory of every peptide is one task, so the workers stay busy until the
    last trajectory; a peptide's folder gets its manifest updated after each of its trajectories,
    so an interrupted run loses only the trajectories in flight, and rerunning it resumes.

    Parameters
    ----------
    jobs : sequence of (Settings, str)
        Each peptide's settings and output folder (created; one folder per peptide).
    n_pairs : int
        Target number of pairs per peptide; rounded up to whole trajectories.
    workers : int, optional
        Local Dask worker processes; 1 (and no ``scheduler``) runs here, without Dask.
    progress : bool, optional
        Show a tqdm bar over trajectories (each finished trajectory and peptide is also logged).
    scheduler : str, optional
        Address of a running Dask scheduler to submit the tasks to instead of a local cluster.

    Returns
    -------
    dict
        Folder: its manifest.

    Raises
    ------
    InputError
        If a folder holds data made with other settings, a PDB file does not match its sequence,
        or the scheduler cannot be reached.
    UnstableMD
        After all other trajectories ran, if some trajectory blew up in every attempt.
    """
    # Absolute paths: workers of a remote cluster do not share this process's working directory.
    folders = [os.path.abspath(out) for _, out in jobs]
    if len(set(folders)) != len(folders):
        raise InputError("two peptides of one run cannot share an output folder")
    tasks, remaining, manifests = [], {}, {}
    for (settings, _), out in zip(jobs, folders):
        peptide_tasks, manifests[out] = _plan_folder(settings, out, n_pairs)
        tasks += peptide_tasks
        remaining[out] = len(peptide_tasks)
    log.info("%d peptides, %d trajectories to run", len(jobs), len(tasks))
    failures = _run_pool(tasks, remaining, manifests, workers, progress, scheduler)
    if failures:
        raise UnstableMD(f"{len(failures)} trajectories failed (the others are saved): " + "; ".join(failures))
    return {out: write_manifest(folder, manifests[folder]) for (_, out), folder in zip(jobs, folders)}


def _plan_folder(settings: Settings, out: str, n_pairs: int) -> Tuple[List[Tuple], Dict]:
    """The tasks of the missing trajectories of one folder and its manifest settings."""
    os.makedirs(out, exist_ok=True)
    topology_pdb, manifest_settings = _open_folder(settings, out)
    n_traj = math.ceil(n_pairs / settings.pairs_per_trajectory)
    todo = [i for i in range(n_traj) if not is_complete(shard_path(out, i))]
    log.info("%s: %d trajectories of %g ps (%d pairs each), %d to run", out, n_traj,
             settings.trajectory_ps, settings.pairs_per_trajectory, len(todo))
    if not todo:
        write_manifest(out, manifest_settings)
    return [(settings, topology_pdb, i, out) for i in todo], manifest_settings


def _run_pool(tasks: List[Tuple], remaining: Dict[str, int], manifests: Dict[str, Dict], workers: int,
              progress: bool, scheduler: Optional[str]) -> List[str]:
    """Run ``tasks`` with a progress bar, keep each folder's manifest current; returns the failures."""
    from tqdm import tqdm

    failures = []
    keys = [f"traj-{settings.sequence}-{i}" for settings, _, i, _ in tasks]
    with tqdm(total=len(tasks), unit="traj", disable=not progress) as bar:
        for index, result, error in run_tasks(run_trajectory, tasks, workers, scheduler, keys, (UnstableMD,)):
            settings, _, trajectory, out = tasks[index]
            bar.update()
            remaining[out] -= 1
            if error is not None:
                log.error("%s: %s", out, error)
                failures.append(f"{out}: {error}")
                continue
            ns_per_min = settings.trajectory_ps / 1000.0 / (result["seconds"] / 60.0)
            log.info("%s: trajectory %d done: %d pairs, start %s, %.0f s (%.2f ns/min)", out,
                     trajectory, result["n_pairs"], "/".join(result["start"]), result["seconds"], ns_per_min)
            manifest = write_manifest(out, manifests[out])
            if remaining[out] == 0:
                log.info("%s (%s) done: %d pairs in %d trajectories", out, settings.sequence,
                         manifest["n_pairs"], manifest["n_trajectories"])
    return failures


def _open_folder(settings: Settings, out: str) -> Tuple[str, Dict]:
    """The starting structure as PDB text and the manifest's settings; refuses a folder of other settings."""
    import json

    if settings.pdb:
        topology, positions = load_pdb(settings.pdb, seed=settings.seed)
        if sequence_of(topology) != settings.sequence:
            raise InputError(f"--sequence {settings.sequence} does not match the PDB file's "
                             f"{sequence_of(topology)}")
    else:
        topology, positions = peptide_from_sequence(settings.sequence, seed=settings.seed)
    text = io.StringIO()
    app.PDBFile.writeFile(topology, positions, text)
    manifest_settings = {"settings": dataclasses.asdict(settings), **_common_metadata(topology)}
    manifest_path = os.path.join(out, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            previous = json.load(f).get("settings")
        # A folder written before a setting existed has that setting's default.
        defaults = {f.name: f.default for f in dataclasses.fields(Settings)
                    if f.default is not dataclasses.MISSING}
        if previous is None or {**defaults, **previous} != manifest_settings["settings"]:
            raise InputError(f"{out} holds data made with other settings {previous}; "
                             "choose another folder")
    write_manifest(out, manifest_settings)
    return text.getvalue(), manifest_settings
