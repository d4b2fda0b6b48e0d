"""What defines one reference run: :class:`ReferenceSettings`, and what a run folder's ``config.json`` says."""

from __future__ import annotations

import dataclasses
import os
import shlex
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ..errors import InputError
from .io import REFERENCE_DIR, reference_name

__all__ = ["ReferenceSettings", "PHYSICS_KEYS", "RESIDUE_BIAS_START_NS", "has_build", "build_ns"]

#: Equilibration under the bias that residue-bias runs have in place of a metadynamics build, ns.
RESIDUE_BIAS_START_NS = 0.02

#: The settings a run folder's ``config.json`` records: a folder is resumed only with the same values.
PHYSICS_KEYS = ("sequence", "seed", "temperature", "friction", "timestep_fs", "hmr", "build_ns", "bias_factor",
                "height", "sigma_deg", "hill_ps", "grid", "chunk_ns", "save_ps", "bias_torsions", "residue_bias")


def has_build(settings: Mapping[str, Any]) -> bool:
    """Whether a run (its ``config.json`` or settings as a dict) starts with a metadynamics build:
    all but ``residue_bias`` alone."""
    return not settings.get("residue_bias") or bool(settings.get("bias_torsions"))


def build_ns(settings: Mapping[str, Any]) -> float:
    """Simulated ns before production, from a run's settings (``config.json`` or settings as a dict)."""
    return settings["build_ns"] if has_build(settings) else RESIDUE_BIAS_START_NS


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """One reference run of capped ``sequence``: its physics, its bias, its production and where it goes.

    Temperature in K, friction in 1/ps, masses in amu, times in ns unless named otherwise.  The
    physics (:data:`PHYSICS_KEYS`) is recorded in the run folder; the rest (``production_ns``,
    ``blocks``, ``finalize_every``, ``max_wall_minutes``, the paths) may change between calls.

    Raises
    ------
    InputError
        On construction, for an unknown residue letter or a bias that cannot be built.
    """

    sequence: str = "A"
    seed: int = 1
    temperature: float = 310.0
    friction: float = 1.0
    timestep_fs: float = 2.0
    hmr: float = 4.0
    build_ns: float = 10.0
    bias_factor: float = 6.0
    height: float = 1.0
    sigma_deg: float = 20.0
    hill_ps: float = 1.0
    grid: int = 91
    bias_torsions: Optional[Tuple[str, ...]] = None
    residue_bias: bool = False
    production_ns: float = 300.0
    chunk_ns: float = 2.0
    save_ps: float = 0.5
    blocks: int = 10
    finalize_every: int = 5
    max_wall_minutes: float = 1e9
    work: Optional[str] = None
    out: Optional[str] = None

    def __post_init__(self) -> None:
        from ..systems import ONE_TO_THREE

        object.__setattr__(self, "sequence", self.sequence.upper())
        if self.bias_torsions is not None:
            object.__setattr__(self, "bias_torsions", tuple(self.bias_torsions) or None)
        if not self.sequence or set(self.sequence) - set(ONE_TO_THREE):
            raise InputError(f"--sequence {self.sequence}: use one-letter codes of {''.join(sorted(ONE_TO_THREE))}")
        if self.bias_torsions and not 1 <= len(self.bias_torsions) <= 3:
            raise InputError("--bias-torsions: name 1 to 3 torsions")
        if self.residue_bias and any(not n.startswith("chi") for n in self.bias_torsions or ()):
            raise InputError("--residue-bias already biases every phi and psi: name only side-chain torsions "
                             "(chi1_K, chi2_K)")

    @property
    def name(self) -> str:
        """The reference's name, e.g. ``ace-ala-nme_310K``."""
        return reference_name(self.sequence, self.temperature)

    @property
    def work_dir(self) -> str:
        """The run folder: ``work``, by default ``runs/reference/<name>`` in the current directory."""
        return os.path.abspath(self.work or os.path.join("runs", "reference", self.name))

    @property
    def out_path(self) -> str:
        """The written reference: ``out``, by default ``<name>.npz`` in :data:`~.io.REFERENCE_DIR`."""
        return os.path.abspath(self.out or os.path.join(REFERENCE_DIR, self.name + ".npz"))

    @property
    def has_build(self) -> bool:
        """Whether the run starts with a metadynamics build (all but ``residue_bias`` alone)."""
        return has_build(self.physics())

    @property
    def build_ns_simulated(self) -> float:
        """Simulated ns before production."""
        return build_ns(self.physics())

    def physics(self) -> Dict[str, Any]:
        """The recorded settings (:data:`PHYSICS_KEYS`) as ``config.json`` holds them."""
        values = {key: getattr(self, key) for key in PHYSICS_KEYS}
        values["bias_torsions"] = list(self.bias_torsions) if self.bias_torsions else None
        return values

    def command(self) -> List[str]:
        """The command line that runs these settings, every option spelled out."""
        words = ["openmm-timewarp", "make-reference"]
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            option = "--" + field.name.replace("_", "-")
            if field.name in ("work", "out"):
                words += [option, getattr(self, field.name + ("_dir" if field.name == "work" else "_path"))]
            elif field.name == "residue_bias":
                words += [option] if value else []
            elif field.name == "bias_torsions":
                words += [option, *value] if value else []
            else:
                words += [option, str(value)]
        return words

    def command_line(self) -> str:
        """:meth:`command` as one shell-quoted line."""
        return " ".join(shlex.quote(word) for word in self.command())
