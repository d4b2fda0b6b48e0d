"""Export a trained flow to a TorchScript proposal model (contract version 1, DESIGN.md section 2).

Usage::

    python -m openmm_timewarp.models.export CHECKPOINT OUT.pt [--kernels FULL TORSION LOCAL] [--local-step S]

The file holds the flow in float32; positions come in and proposals go out in float64, and the
log ratio is accumulated in float64. Randomness comes only from torch's default generator.
"""
import argparse
import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor, nn

from .backbone import BackboneProposal
from .flow import TimewarpFlow
from .internal_flow import InternalTimewarpFlow
from .mixture import ProposalMixture
from .tito import TitoModel

FLOW_CLASSES = {"cartesian": TimewarpFlow, "internal": InternalTimewarpFlow, "tito": TitoModel}
"""Flow class of each ``architecture`` name stored in training checkpoints."""


class ExportedProposal(nn.Module):
    """TorchScript-ready wrapper that follows proposal-model contract version 1.

    Parameters
    ----------
    flow : TimewarpFlow or InternalTimewarpFlow
        The trained flow; anything with ``propose(positions, atom_types, num_proposals)`` and
        ``element_symbols``.
    lag_time_ps : float
        Lag tau of the training pairs.
    temperature_kelvin : float
        Temperature of the training data.
    metadata : dict
        Provenance (training sequences, seeds, command, ...), returned as JSON by ``metadata_json()``.
    """

    def __init__(self, flow: nn.Module, lag_time_ps: float, temperature_kelvin: float,
                 metadata: Dict[str, Any]) -> None:
        super().__init__()
        self.flow = flow.eval()
        self.element_list: List[str] = list(flow.element_symbols)
        self.lag_ps = float(lag_time_ps)
        self.temperature_k = float(temperature_kelvin)
        self.density = bool(getattr(flow, "exact_density", True))
        self.metadata = json.dumps(dict(metadata, flow_config=json.loads(flow.config_json)), sort_keys=True)

    def forward(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Return ``num_proposals`` proposals (B, N, 3) float64 nm and their log ratios (B,) float64."""
        if positions.dim() != 2 or positions.shape[1] != 3:
            raise ValueError("positions must have shape (N, 3)")
        if atom_types.shape[0] != positions.shape[0]:
            raise ValueError("atom_types must have one entry per atom")
        if int(atom_types.min()) < 0 or int(atom_types.max()) >= len(self.element_list):
            raise ValueError("atom_types must index into elements()")
        with torch.no_grad():
            proposals, log_ratio = self.flow.propose(positions.to(torch.float64), atom_types, num_proposals)
        return proposals, log_ratio

    @torch.jit.export
    def elements(self) -> List[str]:
        """Element symbols that ``atom_types`` index into."""
        return self.element_list

    @torch.jit.export
    def lag_time_ps(self) -> float:
        """Lag time tau of the training pairs, ps."""
        return self.lag_ps

    @torch.jit.export
    def temperature_kelvin(self) -> float:
        """Temperature of the training data, K."""
        return self.temperature_k

    @torch.jit.export
    def has_density(self) -> bool:
        """Whether the log ratio is exact (a surrogate such as TITO returns NaN there instead)."""
        return self.density

    @torch.jit.export
    def contract_version(self) -> int:
        """Version of the proposal-model contract this file follows."""
        return 1

    @torch.jit.export
    def metadata_json(self) -> str:
        """Provenance of the model as a JSON string."""
        return self.metadata


class ExportedTito(ExportedProposal):
    """A TITO surrogate under contract version 1, whose lag can be changed within its trained range."""

    @torch.jit.export
    def set_lag_ps(self, lag_ps: float) -> None:
        """Make later proposals lag-``lag_ps`` moves (and ``lag_time_ps()`` report it)."""
        self.flow.set_lag_ps(lag_ps)
        self.lag_ps = lag_ps

    @torch.jit.export
    def lag_range_ps(self) -> List[float]:
        """The lags the model was trained for, [min, max] in ps."""
        return [self.flow.min_lag_ps, self.flow.max_lag_ps]


def load_checkpoint(path: Path) -> Tuple[nn.Module, Dict[str, Any]]:
    """Rebuild the flow of a training checkpoint.

    A checkpoint is a ``torch.save`` dict with ``flow_config`` (the flow's constructor arguments),
    ``flow_state`` (its state dict) and ``info`` (``lag_ps``, ``temperature_K`` and provenance).
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    flow = FLOW_CLASSES[checkpoint.get("architecture", "cartesian")].from_config(checkpoint["flow_config"])
    flow.load_state_dict(checkpoint["flow_state"])
    return flow.eval(), checkpoint["info"]


def load_backbone(path: Path) -> Tuple[BackboneProposal, Dict[str, Any]]:
    """The backbone pivot kernel of a checkpoint of ``training.backbone``, and its provenance."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    kernel = BackboneProposal.from_config(checkpoint["backbone_config"])
    kernel.load_state_dict(checkpoint["backbone_state"])
    return kernel.eval(), checkpoint["info"]


def export_flow(flow: nn.Module, info: Dict[str, Any], out: Path) -> None:
    """Script ``flow`` (or a :class:`ProposalMixture`) with its metadata and save it to ``out``.

    Flow networks are stored in float32; a backbone kernel's density stays float64.
    """
    metadata = {k: v for k, v in info.items() if k not in ("lag_ps", "temperature_K")}
    flow = flow.cpu()
    (flow.flow if isinstance(flow, ProposalMixture) else flow).float()
    wrapper = ExportedTito if isinstance(flow, TitoModel) else ExportedProposal
    module = wrapper(flow, info["lag_ps"], info["temperature_K"], metadata)
    torch.jit.save(torch.jit.script(module), str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description="Export a training checkpoint to a TorchScript proposal model.")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--kernels", type=float, nargs=3, metavar=("FULL", "TORSION", "LOCAL"),
                        help="internal architecture: probabilities of the full, torsion-only and local proposal "
                             "kernels (see InternalTimewarpFlow)")
    parser.add_argument("--local-step", type=float, default=0.1,
                        help="internal architecture: local random-walk step, as a fraction of the learned move scale")
    parser.add_argument("--backbone", type=Path,
                        help="checkpoint of a backbone pivot kernel (python -m openmm_timewarp.training.backbone) to mix "
                             "with the flow")
    parser.add_argument("--backbone-weight", type=float, default=0.5,
                        help="with --backbone: probability that a proposal is a backbone pivot")
    parser.add_argument("--pivot-local", type=float, nargs=2, metavar=("FRACTION", "WIDTH"), default=(0.0, 0.3),
                        help="with --backbone: fraction of pivots that are a symmetric wrapped-normal step of WIDTH rad "
                             "from the current (phi, psi) instead of a draw from the density (for biased runs)")
    parser.add_argument("--side-chains", type=float, nargs=4, metavar=("FRACTION", "JUMP", "WIDTH", "WITH_PIVOTS"),
                        default=(0.0, 0.0, 0.0, 0.0),
                        help="with --backbone: fraction of proposals that turn one chi torsion instead of "
                             "pivoting, rotamer-jump probability, noise width (rad), and fraction of pivots that "
                             "also turn the pivoted residue's chi angles (see models/side_chains.py)")
    parser.add_argument("--rotamers", type=float, nargs=3, metavar=("CROSSING", "OTHER", "WIDTH"),
                        default=(0.0, 0.0, 0.35),
                        help="with --backbone: fraction of the pivots changing the sign of phi, and of the others, "
                             "that also redraw the residue's chi1 from rotamers WIDTH rad wide at -60, 180 and 60 "
                             "degrees (see models/backbone.py)")
    parser.add_argument("--basin-prior", type=float, nargs=2, metavar=("WEIGHT", "WIDTH"), default=(0.0, 0.35),
                        help="with --backbone: weight of fixed (phi, psi) components at the known backbone minima, "
                             "WIDTH rad wide, mixed into the learned density (see models/ramachandran.py)")
    parser.add_argument("--max-residues", type=int,
                        help="largest peptide (residues, caps included) the model is meant for; the command line "
                             "refuses larger ones")
    parser.add_argument("--lag-ps", type=float, help="TITO: the lag of the exported moves (within the trained range)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    args = parser.parse_args()
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} exists; pass --overwrite to replace it")
    flow, info = load_checkpoint(args.checkpoint)
    if args.lag_ps is not None:
        if not isinstance(flow, TitoModel):
            parser.error("--lag-ps applies to TITO models only (a Timewarp flow has the lag of its data)")
        flow.set_lag_ps(args.lag_ps)
        info = dict(info, lag_ps=args.lag_ps)
    if args.kernels is not None:
        if not isinstance(flow, InternalTimewarpFlow):
            parser.error("--kernels applies to the internal architecture only")
        flow.set_kernels(*args.kernels, local_step=args.local_step)
        info = dict(info, kernels=dict(zip(("full", "torsion", "local"), args.kernels)), local_step=args.local_step)
    if args.backbone is not None:
        kernel, kernel_info = load_backbone(args.backbone)
        kernel.set_local(*args.pivot_local)
        kernel.set_side_chains(*args.side_chains)
        kernel.set_rotamers(*args.rotamers)
        kernel.density.set_basin_prior(*args.basin_prior)
        flow = ProposalMixture(flow, kernel, args.backbone_weight)
        info = dict(info, backbone=dict(kernel_info, checkpoint=str(args.backbone), weight=args.backbone_weight,
                                        local_fraction=args.pivot_local[0], local_width=args.pivot_local[1],
                                        side_chains=dict(zip(("fraction", "jump", "width", "with_pivots"),
                                                             args.side_chains)),
                                        rotamers=dict(zip(("crossing", "other", "width"), args.rotamers)),
                                        basin_prior=dict(zip(("weight", "width"), args.basin_prior))))
    if args.max_residues is not None:
        info = dict(info, max_residues=args.max_residues)
    export_flow(flow, info, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{sum(p.numel() for p in flow.parameters())} parameters)")


if __name__ == "__main__":
    main()
