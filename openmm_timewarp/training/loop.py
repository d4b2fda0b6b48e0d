"""The training loop of the pair-likelihood flows: maximum likelihood, then acceptance fine-tuning.

Several data folders (one per peptide, say) train one transferable model: the flow sees only
elements and geometry, so molecules of any size share it. What differs between architectures
(batching, augmentation, losses) is the architecture's objective (``objectives.py``).

Writes ``OUT/last.pt`` (every ``checkpoint_every`` steps and at each epoch end, for ``resume``),
``best.pt`` (lowest validation NLL of the likelihood phase), ``finetuned.pt`` (after each
acceptance epoch) and ``log.jsonl`` (per epoch: validation NLL and, where the shards name their
Systems, the validation MH acceptance rate of one proposal). Checkpoints have the format of
``proposals.export.save_checkpoint``; ``openmm-timewarp export`` turns one into a model file.

Acceptance fine-tuning evaluates energies with OpenMM: each shard's System comes from the XML
file its metadata names (``system_xml``, relative to its shard's folder) or else is rebuilt from
the ``topology_pdb`` in its metadata with ``openmm_timewarp.systems.create_system``.
"""
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from tqdm import tqdm

from ..errors import InputError
from ..proposals.export import save_checkpoint
from ..proposals.kernel import ProposalKernel
from ..proposals.registry import kernel_class
from .dataset import PairSet, load_pairs, random_rotations, reversed_pairs
from .energies import molecule_energies
from .objectives import OBJECTIVES, Objective, objective_for

__all__ = ["TrainConfig", "train", "common_value", "validation_nll"]


@dataclasses.dataclass
class TrainConfig:
    """What a training run does; the fields are the options of ``openmm-timewarp train``.

    ``hidden``, ``couplings``, ``blocks``, ``embed_dim`` and ``length_scales`` size a new flow
    (None: the architecture's default); a resumed run keeps the size and architecture it has.
    """

    data: List[Path]
    out: Path
    epochs: int = 20
    acceptance_epochs: int = 0
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    acceptance_lr: float = 1e-4
    nll_weight: float = 1.0
    jump_weight: float = 0.0
    acceptance_kernel: str = "torsion"
    val_fraction: float = 0.1
    align: bool = True
    checkpoint_every: int = 500
    resume: bool = False
    device: str = "cpu"
    threads: int = 0
    architecture: str = "internal"
    time_reversal: bool = True
    elements: List[str] = dataclasses.field(default_factory=lambda: ["H", "C", "N", "O", "S"])
    hidden: Optional[int] = None
    couplings: Optional[int] = None
    blocks: Optional[int] = None
    embed_dim: Optional[int] = None
    length_scales: Optional[List[float]] = None
    command: str = ""


def common_value(molecules: List[Dict], key: str) -> float:
    """The value of ``key`` shared by every shard's metadata; a model has one lag and one temperature."""
    values = {float(m[key]) for m in molecules}
    if len(values) != 1:
        raise InputError(f"shards disagree on {key}: {sorted(values)}")
    return values.pop()


def validation_nll(loss_fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor], pairs: PairSet, batch_size: int,
                   device: torch.device, seed: int) -> float:
    """Mean NLL ``loss_fn`` over the validation pairs, with fixed auxiliary noise."""
    if len(pairs) == 0:
        return float("nan")
    total = 0.0
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(pairs), batch_size):
            index = torch.arange(start, min(start + batch_size, len(pairs)))
            total += loss_fn(pairs.batch(index, device)).item() * len(index)
    return total / len(pairs)


def _run_info(config: TrainConfig, molecules: List[Dict], train_pairs: PairSet, val_pairs: PairSet,
              architecture: str) -> Dict[str, Any]:
    """The provenance recorded in every checkpoint (and, through export, in the model file)."""
    return {
        "lag_ps": common_value(molecules, "lag_ps"),
        "temperature_K": common_value(molecules, "temperature_K"),
        "sequences": sorted({str(m.get("sequence", m["shard"])) for m in molecules}),
        "seed": config.seed,
        "command": config.command,
        "data": [str(d) for d in config.data],
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        "aligned_pairs": config.align,
        "architecture": architecture,
        "time_reversal": config.time_reversal,
        "epochs": config.epochs,
        "acceptance_epochs": config.acceptance_epochs,
    }


def _new_flow(config: TrainConfig, architecture: str, elements: Sequence[str],
              checkpoint: Optional[Dict]) -> ProposalKernel:
    """A fresh flow of ``architecture`` sized by ``config``, or the flow of ``checkpoint``."""
    if checkpoint is not None:  # the architecture of the run being resumed, whatever the size options say
        flow = kernel_class(architecture).from_config(checkpoint["flow_config"])
        flow.load_state_dict(checkpoint["flow_state"])
        return flow
    sizes = dict(hidden=config.hidden, num_couplings=config.couplings, num_blocks=config.blocks,
                 embed_dim=config.embed_dim, length_scales=config.length_scales)
    return kernel_class(architecture)(list(elements), **{k: v for k, v in sizes.items() if v is not None})


class _Run:
    """The state of one training run: flow, objective, optimizer, progress, files."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        config.out.mkdir(parents=True, exist_ok=True)
        self.last, self.best, self.finetuned = (config.out / n for n in ("last.pt", "best.pt", "finetuned.pt"))
        checkpoint = torch.load(self.last, map_location="cpu", weights_only=False) if config.resume else None
        elements = config.elements if checkpoint is None else checkpoint["flow_config"]["elements"]
        architecture = config.architecture if checkpoint is None else checkpoint.get("architecture", "cartesian")
        if architecture not in OBJECTIVES:
            raise InputError(f"cannot train architecture '{architecture}'; trainable: {sorted(OBJECTIVES)}")
        splits = load_pairs(config.data, elements, config.val_fraction, config.align)
        self.train_pairs, self.val_pairs = splits["train"], splits["val"]
        self.molecules = self.train_pairs.molecules
        if config.time_reversal:
            self.train_pairs = reversed_pairs(self.train_pairs)
        self.info = _run_info(config, self.molecules, self.train_pairs, self.val_pairs, architecture)
        torch.manual_seed(config.seed)
        self.flow = _new_flow(config, architecture, elements, checkpoint)
        self.objective: Objective = objective_for(self.flow, self.train_pairs)
        if checkpoint is None:
            self.objective.initialise()
        self.flow.to(self.device)
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=config.lr)
        self.state = {"epoch": 0, "batch": 0, "step": 0, "best_val": math.inf}
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.state = checkpoint["state"]
            torch.set_rng_state(checkpoint["torch_rng"])
            self.info["resumed_at_step"] = self.state["step"]

    def save(self, path: Path) -> None:
        save_checkpoint(path, self.flow, self.info, optimizer=self.optimizer.state_dict(), state=self.state,
                        torch_rng=torch.get_rng_state())

    def energies(self) -> Dict:
        """Reduced energies per molecule where every shard names its System (else {})."""
        have_systems = all("system_xml" in m or "topology_pdb" in m for m in self.molecules)
        if self.config.acceptance_epochs > 0 and not have_systems:
            raise InputError("acceptance fine-tuning needs energies: every shard must carry system_xml or topology_pdb")
        return molecule_energies(self.molecules, self.info["temperature_K"]) if have_systems else {}


def _loss(run: _Run, batch: Dict[str, torch.Tensor], energies: Dict, acceptance_phase: bool):
    """The loss of one batch and the numbers shown for it."""
    if not acceptance_phase:
        loss = run.objective.nll(batch)
        return loss, {"nll": f"{loss.item():.3f}"}
    loss_acc, accept = run.objective.acceptance_loss(batch, energies, run.config.jump_weight)
    loss_nll = run.objective.nll(batch)
    postfix = {"acc_loss": f"{loss_acc.item():.3f}", "p_acc": f"{accept.item():.3f}", "nll": f"{loss_nll.item():.3f}"}
    return loss_acc + run.config.nll_weight * loss_nll, postfix


def _epoch(run: _Run, energies: Dict, steps_per_epoch: int, acceptance_phase: bool) -> Dict[str, str]:
    """Train one epoch (or its rest, after a resume); returns the last batch's numbers."""
    config, state, epoch = run.config, run.state, run.state["epoch"]
    # The shuffle and augmentation of an epoch depend only on (seed, epoch): resume skips exactly.
    order = torch.Generator().manual_seed(config.seed * 100003 + epoch)
    rotations = random_rotations(steps_per_epoch * config.batch_size,
                                 torch.Generator().manual_seed(config.seed * 100019 + epoch))
    run.flow.train()
    bar = tqdm(run.train_pairs.batch_indices(config.batch_size, order, skip=state["batch"],
                                             groups=run.objective.row_groups()),
               total=steps_per_epoch, initial=state["batch"], dynamic_ncols=True,
               desc=f"epoch {epoch + 1}" + (" (acceptance)" if acceptance_phase else ""))
    postfix: Dict[str, str] = {}
    for index in bar:
        r = rotations[state["batch"] * config.batch_size:(state["batch"] + 1) * config.batch_size]
        batch = run.objective.augment(run.train_pairs.batch(index, run.device), r)
        loss, postfix = _loss(run, batch, energies, acceptance_phase)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.flow.parameters(), 10.0)
        run.optimizer.step()
        state["batch"] += 1
        state["step"] += 1
        bar.set_postfix(postfix)
        if state["step"] % config.checkpoint_every == 0:
            run.save(run.last)
    return postfix


def _validate(run: _Run, energies: Dict, acceptance_phase: bool, started: float,
              postfix: Dict[str, str]) -> Dict[str, Any]:
    """The log record of the epoch just trained: validation NLL and acceptance."""
    config = run.config
    run.flow.eval()
    val = validation_nll(run.objective.nll, run.val_pairs, 4 * config.batch_size, run.device, config.seed)
    record = {"epoch": run.state["epoch"] + 1, "step": run.state["step"], "val_nll": val,
              "phase": "acceptance" if acceptance_phase else "likelihood", "seconds": time.perf_counter() - started}
    if energies:
        record["val_p_acc"] = run.objective.validation_acceptance(run.val_pairs, energies, 4 * config.batch_size,
                                                                  run.device, config.seed)
    record.update({k: float(v) for k, v in postfix.items()})
    return record


def train(config: TrainConfig) -> Path:
    """Run training as ``config`` says; returns the final checkpoint (fine-tuned, or best).

    Raises
    ------
    InputError
        If the data cannot train the model (too few pairs, shards that disagree on lag or
        temperature, no energies for acceptance fine-tuning).
    """
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    run = _Run(config)
    energies = run.energies()
    steps_per_epoch = len(run.train_pairs.batch_indices(config.batch_size, torch.Generator().manual_seed(0),
                                                        groups=run.objective.row_groups()))
    if steps_per_epoch == 0:
        raise InputError(f"{len(run.train_pairs)} training pairs do not fill one batch of {config.batch_size}")
    with (config.out / "log.jsonl").open("a") as log:
        while run.state["epoch"] < config.epochs + config.acceptance_epochs:
            acceptance_phase = run.state["epoch"] >= config.epochs
            for group in run.optimizer.param_groups:
                group["lr"] = config.acceptance_lr if acceptance_phase else config.lr
            if acceptance_phase:  # also the kernel whose acceptance is validated after the epoch
                run.objective.use_kernel(config.acceptance_kernel)
            started = time.perf_counter()
            postfix = _epoch(run, energies, steps_per_epoch, acceptance_phase)
            record = _validate(run, energies, acceptance_phase, started, postfix)
            log.write(json.dumps(record) + "\n")
            log.flush()
            tqdm.write(json.dumps(record))
            run.state["epoch"], run.state["batch"] = run.state["epoch"] + 1, 0
            if acceptance_phase:
                run.save(run.finetuned)
            elif record["val_nll"] < run.state["best_val"]:
                run.state["best_val"] = record["val_nll"]
                run.save(run.best)
            run.save(run.last)
    return run.finetuned if config.acceptance_epochs > 0 else run.best
