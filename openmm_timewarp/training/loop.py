"""The training loop: epochs of optimizer steps on an objective's batches, checkpoints, log, resume.

It knows nothing of any architecture: an :class:`Objective` (``objectives.py`` for the flows trained
on pairs, ``tito.py`` for TITO) says what its phases, batches, loss and validation are. A run
directory holds ``last.pt`` (every ``checkpoint_every`` steps and at each epoch end, for resume),
``best.pt`` (lowest validation loss of a phase that keeps the best), ``finetuned.pt`` (after each
epoch of a phase that keeps its last), and ``log.jsonl`` (one record per epoch). Checkpoints have
the format of ``proposals.export.save_checkpoint``.
"""
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from tqdm import tqdm

from ..errors import InputError
from ..proposals.export import save_checkpoint
from ..proposals.kernel import ProposalKernel

__all__ = ["Phase", "Objective", "run"]


@dataclasses.dataclass
class Phase:
    """A stage of training: ``epochs`` epochs at learning rate ``lr``. After each epoch a phase that
    keeps ``"best"`` writes ``best.pt`` when the validation loss is the lowest yet; one that keeps
    ``"finetuned"`` writes ``finetuned.pt``."""

    name: str
    epochs: int
    lr: float
    keep: str = "best"


class Objective:
    """What the loop trains: a kernel, its data, phases, loss and validation.

    Attributes
    ----------
    kernel : ProposalKernel
        The kernel being trained (its parameters are optimized).
    info : dict
        Provenance stored in every checkpoint (``lag_ps``, ``temperature_K``, training data, seed).
    validation_key : str
        The key of :meth:`validate`'s record that ``best.pt`` minimises.
    """

    kernel: ProposalKernel
    info: Dict[str, Any]
    validation_key = "val_loss"

    def phases(self) -> List[Phase]:
        """The phases, in order."""
        raise NotImplementedError

    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (at least 1)."""
        raise NotImplementedError

    def begin_phase(self, phase: Phase) -> None:
        """Called before every epoch of ``phase``."""

    def batches(self, epoch: int, skip: int) -> Iterable[Any]:
        """The batches of epoch ``epoch`` after the first ``skip`` (those a resumed run has done)."""
        raise NotImplementedError

    def loss(self, batch: Any, phase: Phase) -> Tuple[torch.Tensor, Dict[str, float]]:
        """The loss of one batch and the numbers to show and log for it."""
        raise NotImplementedError

    def validate(self, phase: Phase) -> Dict[str, float]:
        """Validation numbers after an epoch of ``phase``, with :attr:`validation_key` among them."""
        raise NotImplementedError

    def random_state(self) -> Dict[str, Any]:
        """Random-generator states of the objective's own, stored in checkpoints."""
        return {}

    def restore_random_state(self, checkpoint: Dict[str, Any]) -> None:
        """Restore what :meth:`random_state` stored."""


class _Progress:
    """Optimizer, progress counters and files of one run."""

    def __init__(self, objective: Objective, out: Path, checkpoint: Optional[Dict[str, Any]]) -> None:
        self.objective, self.out = objective, out
        self.optimizer = torch.optim.Adam(objective.kernel.parameters(), lr=objective.phases()[0].lr)
        self.state = {"epoch": 0, "batch": 0, "step": 0, "best_val": math.inf}
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.state = dict(self.state, **checkpoint["state"])
            torch.set_rng_state(checkpoint["torch_rng"])
            objective.restore_random_state(checkpoint)
            objective.info["resumed_at_step"] = self.state["step"]

    def save(self, name: str) -> None:
        save_checkpoint(self.out / name, self.objective.kernel, self.objective.info,
                        optimizer=self.optimizer.state_dict(), state=self.state, torch_rng=torch.get_rng_state(),
                        **self.objective.random_state())


def _phase_at(phases: List[Phase], epoch: int) -> Phase:
    """The phase of epoch ``epoch`` (0-based)."""
    for phase in phases:
        if epoch < phase.epochs:
            return phase
        epoch -= phase.epochs
    return phases[-1]


def _epoch(run: _Progress, phase: Phase, checkpoint_every: int, progress: bool) -> Dict[str, float]:
    """Train one epoch (or its rest, after a resume); returns the numbers of the log record."""
    objective, state = run.objective, run.state
    for group in run.optimizer.param_groups:
        group["lr"] = phase.lr
    objective.begin_phase(phase)
    objective.kernel.train()
    bar = tqdm(objective.batches(state["epoch"], state["batch"]), total=objective.steps_per_epoch(),
               initial=state["batch"], desc=f"epoch {state['epoch'] + 1} ({phase.name})", dynamic_ncols=True,
               disable=not progress)
    losses: List[float] = []
    numbers: Dict[str, float] = {}
    for batch in bar:
        loss, numbers = objective.loss(batch, phase)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(objective.kernel.parameters(), 10.0)
        run.optimizer.step()
        losses.append(loss.item())
        state["batch"] += 1
        state["step"] += 1
        bar.set_postfix({k: f"{v:.4g}" for k, v in numbers.items()})
        if state["step"] % checkpoint_every == 0:
            run.save("last.pt")
    return dict(numbers, train_loss=float(sum(losses) / max(len(losses), 1)))


def run(make_objective: Callable[[Optional[Dict[str, Any]]], Objective], out: Path, *, resume: bool = False,
        checkpoint_every: int = 500, progress: bool = True) -> Path:
    """Train the objective that ``make_objective`` builds (from the checkpoint of a resumed run, or
    None) in the run directory ``out``; returns the checkpoint of the last phase (best or finetuned).

    Raises
    ------
    InputError
        If ``out`` holds a run and ``resume`` is False, or ``resume`` is True and it holds none.
    """
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    if resume and not last.exists():
        raise InputError(f"{out} holds no run to resume (no last.pt)")
    if not resume and last.exists():
        raise InputError(f"{out} holds a run already: pass --resume to continue it, or choose another --out")
    checkpoint = torch.load(last, map_location="cpu", weights_only=False) if resume else None
    objective = make_objective(checkpoint)
    phases = objective.phases()
    progress_state = _Progress(objective, out, checkpoint)
    state = progress_state.state
    with (out / "log.jsonl").open("a") as log:
        while state["epoch"] < sum(p.epochs for p in phases):
            phase, started = _phase_at(phases, state["epoch"]), time.perf_counter()
            numbers = _epoch(progress_state, phase, checkpoint_every, progress)
            objective.kernel.eval()
            record = {"epoch": state["epoch"] + 1, "step": state["step"], "phase": phase.name,
                      **objective.validate(phase), "seconds": time.perf_counter() - started, **numbers}
            log.write(json.dumps(record) + "\n")
            log.flush()
            tqdm.write(json.dumps(record))
            state["epoch"], state["batch"] = state["epoch"] + 1, 0
            if phase.keep == "finetuned":
                progress_state.save("finetuned.pt")
            elif record[objective.validation_key] < state["best_val"]:
                state["best_val"] = record[objective.validation_key]
                progress_state.save("best.pt")
            progress_state.save("last.pt")
    return out / ("finetuned.pt" if phases[-1].keep == "finetuned" else "best.pt")
