"""What a proposal-model file is: one object that resolves, reads and describes it.

A model file (``docs/model-contract.md``) is a TorchScript archive that carries everything a chain
needs to be correct: the contract methods (elements, lag, temperature, density), the provenance
(``metadata_json()``: training data, kernels and their settings) and, in the archive entry
``timewarp.json``, the integrator settings the model needs (hybrid Monte Carlo for the coordinates
its moves never change).  :class:`ModelFile` reads a file once; the integrator, the peptide checks,
the command line and the run summary all ask it, never the file again.
"""
from __future__ import annotations

import functools
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, List, Optional, Sequence, Tuple, Union

from .errors import InputError

__all__ = ["ModelFile", "ModelLike", "SETTINGS_ENTRY", "DEFAULT_MODEL", "DEFAULT_TITO_MODEL", "DEFAULT_MAX_RESIDUES", "SHIPPED_DIR", "available_models",
           "read_compiled_archive", "resolve_model_path", "save_model", "shipped_provenance"]

#: The archive entry (a TorchScript "extra file") that holds a model's integrator settings.
SETTINGS_ENTRY = "timewarp.json"
#: Folder of the shipped models (``NAME.pt``, with ``NAME.json`` recording provenance and quality).
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "trained")
#: The model ``sample`` and ``openmm-timewarp sample`` use unless told otherwise.
DEFAULT_MODEL = "dipeptides"
#: The TITO model ``tito`` and ``openmm-timewarp tito`` use unless told otherwise.
DEFAULT_TITO_MODEL = "dipeptides-tito"
#: Residues between the caps a model supports when its metadata records no limit: the Timewarp
#: models were trained and validated on di- to tetrapeptides (the 2AA and 4AA data sets).
DEFAULT_MAX_RESIDUES = 4
#: Integrator settings a model may recommend, with the defaults of a model that recommends none.
INTEGRATOR_DEFAULTS = {"hmc_interval": 0, "hmc_steps": 10, "hmc_step_size_ps": 0.001, "hmc_minimum_mass_amu": 0.0}

ModelLike = Union[str, os.PathLike, "ModelFile"]


#: File extensions of model files: TorchScript (contract v1) and compiled archives (contract v2).
MODEL_EXTENSIONS = (".pt", ".pt2")
#: Archive entry (under ``extra/``) of a compiled file's topology module (``proposals.compiled``).
TOPOLOGY_ENTRY = "topology.pt"


def available_models() -> List[str]:
    """Names of the shipped models, sorted."""
    return sorted(os.path.splitext(f)[0] for f in os.listdir(SHIPPED_DIR) if f.endswith(MODEL_EXTENSIONS))


def resolve_model_path(model: Union[str, os.PathLike]) -> str:
    """The absolute path of a model file given by path or by shipped name.

    Raises
    ------
    InputError
        If ``model`` is neither an existing file nor the name of a shipped model.
    """
    model = os.fspath(model)
    if os.path.isfile(model):
        return os.path.abspath(model)
    for extension in MODEL_EXTENSIONS:
        shipped = os.path.join(SHIPPED_DIR, model + extension)
        if os.path.isfile(shipped):
            return shipped
    if os.path.isdir(model):
        raise InputError(f"model {model} is a folder, not a model file")
    names = ", ".join(available_models()) or "none"
    raise InputError(f"no model file '{model}' and no shipped model of that name (shipped models: {names})")


def shipped_provenance(name: str) -> Dict[str, Any]:
    """The recorded recipe and measured quality of a shipped model (``trained/NAME.json``), or {}."""
    path = os.path.join(SHIPPED_DIR, name + ".json")
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _load_module(data: bytes, source: str):
    """A TorchScript module and its settings entry from a file's bytes, or an InputError naming the file."""
    import torch

    extra = {SETTINGS_ENTRY: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that TorchScript is deprecated
        try:
            module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
        except Exception as error:  # torch raises RuntimeError or ValueError for corrupt files
            raise InputError(f"cannot load model file {source}: it is not a readable TorchScript file "
                             f"(corrupt, or saved by an incompatible torch): {error}") from None
    raw = extra[SETTINGS_ENTRY]
    try:
        settings = json.loads(raw) if raw else {}
    except ValueError as error:
        raise InputError(f"model file {source}: its {SETTINGS_ENTRY} entry is not valid JSON ({error})") from None
    return module, settings


def read_compiled_archive(data: bytes) -> Optional[Tuple[Dict[str, Any], bytes]]:
    """The settings entry and the topology module's bytes of a compiled (contract v2) archive's
    bytes (``docs/model-contract.md``); None for other bytes (a TorchScript file, say)."""
    import base64
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = {n.split("/", 1)[1]: n for n in archive.namelist() if "/" in n}
            if ("extra/" + TOPOLOGY_ENTRY not in names or "extra/" + SETTINGS_ENTRY not in names
                    or not any(n.startswith("data/aotinductor/") for n in names)):
                return None
            return (json.loads(archive.read(names["extra/" + SETTINGS_ENTRY])),
                    base64.b64decode(archive.read(names["extra/" + TOPOLOGY_ENTRY])))
    except (zipfile.BadZipFile, ValueError):
        return None


@dataclass(frozen=True)
class ModelFile:
    """A proposal-model file, read once: its contract facts, metadata and recommended settings.

    Build one with :meth:`open` (a path or a shipped name) or :meth:`from_bytes`.

    Attributes
    ----------
    path : str
        Absolute path of the file; empty for a model given as bytes.
    name : str
        The shipped name, else the file name.
    data : bytes
        The file's bytes (what the integrator loads and what its XML embeds).
    elements : list of str
        Element symbols that atom types index into.
    lag_time_ps, temperature_K : float
        Lag time of a move and temperature of the training data.
    has_density : bool
        Whether the log ratios are exact (required for Metropolis-Hastings).
    contract_version : int
        Version of the proposal-model contract the file follows.
    metadata : dict
        Provenance from ``metadata_json()``: training data, kernels and their settings, domain.
    settings : dict
        The ``timewarp.json`` entry: what the integrator needs for a correct chain.
    """

    path: str
    name: str
    data: bytes = field(repr=False)
    elements: List[str]
    lag_time_ps: float
    temperature_K: float
    has_density: bool
    contract_version: int
    metadata: Dict[str, Any] = field(repr=False)
    settings: Dict[str, Any] = field(repr=False)
    module: Any = field(repr=False, compare=False)

    @classmethod
    def open(cls, model: ModelLike) -> "ModelFile":
        """Resolve and read a model given by path or shipped name (an open ModelFile is returned as is).

        Raises
        ------
        InputError
            For a missing, unreadable or corrupt file, or one that is not a proposal model.
        """
        if isinstance(model, ModelFile):
            return model
        path = resolve_model_path(model)
        stat = os.stat(path)
        return _open_cached(path, stat.st_mtime_ns, stat.st_size)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<model bytes>", path: str = "") -> "ModelFile":
        """Read a model from the bytes of a model file (e.g. an integrator's embedded copy)."""
        archive = read_compiled_archive(data)
        if archive is not None:  # a compiled archive: its facts are in the entry; no TorchScript module
            entry = archive[0]
            try:
                settings = {k: entry[k] for k in ("integrator", "needs_fast_coordinate_moves") if k in entry}
                return cls(path, name, bytes(data), list(entry["elements"]), float(entry["lag_time_ps"]),
                           float(entry["temperature_kelvin"]), bool(entry["has_density"]),
                           int(entry["contract_version"]), dict(entry.get("metadata", {})), settings, None)
            except (KeyError, TypeError, ValueError) as error:
                raise InputError(f"model file {path or name}: its {SETTINGS_ENTRY} entry lacks or mistypes "
                                 f"{error}") from None
        module, settings = _load_module(data, path or name)
        missing = [m for m in ("contract_version", "elements", "lag_time_ps", "temperature_kelvin", "has_density")
                   if not hasattr(module, m)]
        if missing:
            raise InputError(f"model file {path or name} is not a Timewarp proposal model: it has no "
                             f"{', '.join(m + '()' for m in missing)}")
        metadata = json.loads(module.metadata_json()) if hasattr(module, "metadata_json") else {}
        return cls(path, name, bytes(data), list(module.elements()), float(module.lag_time_ps()),
                   float(module.temperature_kelvin()), bool(module.has_density()), int(module.contract_version()),
                   metadata, settings, module)

    def __fspath__(self) -> str:
        """The file's path, so that code taking a model path also takes an open ModelFile.

        Raises
        ------
        InputError
            For a model read from bytes, which has no file.
        """
        if not self.path:
            raise InputError(f"model {self.name} was read from bytes and has no file path")
        return self.path

    def fresh_module(self):
        """A new copy of the TorchScript module, for a caller that changes it (``module`` is shared
        by every user of the file).

        Raises
        ------
        InputError
            For a compiled (contract v2) file, which has no TorchScript module.
        """
        if self.module is None:
            raise InputError(f"model {self.name} is a compiled (contract v2) file, which cannot be changed")
        return _load_module(self.data, self.path or self.name)[0]

    @property
    def shipped(self) -> bool:
        """Whether this is one of the package's shipped models."""
        return bool(self.path) and os.path.dirname(self.path) == SHIPPED_DIR

    @property
    def provenance(self) -> Dict[str, Any]:
        """The model's metadata, merged over a shipped model's recorded recipe and quality."""
        info = dict(shipped_provenance(self.name) if self.shipped else {})
        info.update(self.metadata)
        return info

    @property
    def integrator_settings(self) -> Dict[str, Any]:
        """The integrator settings the model recommends (``hmc_interval``, ``hmc_steps``,
        ``hmc_step_size_ps``, ``hmc_minimum_mass_amu``), with the defaults for those it does not set."""
        return dict(INTEGRATOR_DEFAULTS, **self.settings.get("integrator", {}))

    @property
    def needs_fast_coordinate_moves(self) -> bool:
        """Whether the model's moves leave some coordinates (bond lengths, angles) unchanged, so
        that the chain is ergodic only with hybrid Monte Carlo moves (``hmc_interval`` > 0)."""
        return bool(self.settings.get("needs_fast_coordinate_moves", False))

    @property
    def trained_sequences(self) -> List[str]:
        """The sequences whose data trained the kernels that move a peptide.

        A backbone kernel with weight 1 moves every peptide (the flow then moves only molecules
        without a backbone), so its sequences count; otherwise the flow's.
        """
        backbone = self.metadata.get("backbone") or {}
        if backbone and float(backbone.get("weight", 0.0)) >= 1.0:
            return [str(s) for s in backbone.get("sequences", [])]
        return [str(s) for s in self.metadata.get("sequences", [])]

    @property
    def max_residues(self) -> int:
        """Largest peptide (residues between the caps) the model is meant for."""
        return int(self.metadata.get("max_residues", DEFAULT_MAX_RESIDUES))

    @property
    def max_residues_source(self) -> str:
        """Where :attr:`max_residues` comes from, for messages."""
        return ("the model's metadata" if "max_residues" in self.metadata
                else "the default for models without a recorded limit")

    def description(self) -> Dict[str, Any]:
        """What the model says about itself, JSON-ready: name, path, contract facts, size limit,
        recommended integrator settings, whether it needs fast-coordinate moves, and provenance."""
        return dict(name=self.name, path=self.path, elements=list(self.elements), lag_time_ps=self.lag_time_ps,
                    temperature_K=self.temperature_K, exact_density=self.has_density,
                    contract_version=self.contract_version, max_residues=self.max_residues,
                    integrator_settings=self.integrator_settings,
                    needs_fast_coordinate_moves=self.needs_fast_coordinate_moves, provenance=self.provenance)

    def domain_warnings(self, sequence: str, capped: bool = True, temperature_K: Optional[float] = None) -> List[str]:
        """Why a peptide and a temperature lie outside what the model was trained for (empty if inside).

        One rule for every way into a chain (peptide preparation, runs, the integrator): residues
        and lengths unseen in training (:func:`openmm_timewarp.domain.domain_warnings`), more
        residues than :attr:`max_residues`, uncapped termini (the models are trained on
        ACE/NME-capped peptides) and a temperature more than 1 K from the training temperature.

        Parameters
        ----------
        sequence
            One-letter sequence between the caps; empty to check the temperature alone.
        capped
            Whether the peptide has ACE/NME caps.
        temperature_K
            The sampling temperature; None to leave it out.
        """
        from .domain import domain_warnings

        reasons = domain_warnings(sequence, self.trained_sequences, self.name) if sequence else []
        longest = max((len(s) for s in self.trained_sequences), default=0)
        # The training-length reason above already covers a peptide longer than every training sequence.
        if len(sequence) > self.max_residues and not (longest and len(sequence) > longest):
            reasons.append(f"{sequence} has {len(sequence)} residues; the model {self.name} is meant for at most "
                           f"{self.max_residues} (limit from {self.max_residues_source}): expect a low acceptance "
                           "rate")
        if sequence and not capped:
            reasons.append(f"the peptide has charged (uncapped) termini; the model {self.name} was trained on ACE/NME-"
                           "capped peptides: expect a low acceptance rate, or pass --cap-termini (cap_termini=True) "
                           "to sample the capped peptide instead (a different molecule)")
        if temperature_K is not None and abs(temperature_K - self.temperature_K) > 1.0:
            reasons.append(f"the run samples at {temperature_K:g} K; the model {self.name} was trained at "
                           f"{self.temperature_K:g} K: Metropolis-Hastings targets {temperature_K:g} K exactly, "
                           "but expect a lower acceptance rate")
        return reasons

    def check_elements(self, symbols: Sequence[str], source: str = "the System") -> None:
        """Refuse element symbols the model does not know (an :class:`InputError` naming them)."""
        unknown = sorted(set(symbols) - set(self.elements))
        if unknown:
            raise InputError(f"{source}: element(s) {', '.join(unknown)} unknown to the model {self.name} "
                             f"(it knows {' '.join(self.elements)})")


@functools.lru_cache(maxsize=8)
def _open_cached(path: str, mtime_ns: int, size: int) -> ModelFile:
    # Keyed by the file's version, so an overwritten file is read again.
    with open(path, "rb") as f:
        data = f.read()
    shipped = os.path.dirname(path) == SHIPPED_DIR
    base, extension = os.path.splitext(os.path.basename(path))
    name = base if shipped and extension in MODEL_EXTENSIONS else os.path.basename(path)
    return ModelFile.from_bytes(data, name=name, path=path)


def save_model(module, out: Union[str, os.PathLike, BinaryIO], settings: Optional[Dict[str, Any]] = None) -> None:
    """Save a scripted proposal model with its settings entry (``timewarp.json``).

    Parameters
    ----------
    module
        A ``torch.jit.ScriptModule`` following the contract.
    out
        The file to write: a path, or a binary file object.
    settings
        What the integrator needs: ``integrator`` (``hmc_interval``, ``hmc_steps``,
        ``hmc_step_size_ps``) and ``needs_fast_coordinate_moves``; see ``docs/model-contract.md``.
    """
    import torch

    unknown = set((settings or {}).get("integrator", {})) - set(INTEGRATOR_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown integrator settings {sorted(unknown)}; known: {sorted(INTEGRATOR_DEFAULTS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, out if hasattr(out, "write") else os.fspath(out),
                       _extra_files={SETTINGS_ENTRY: json.dumps(settings or {}, sort_keys=True, indent=1)})
