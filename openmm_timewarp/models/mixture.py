"""A random-scan mixture of a Timewarp flow and backbone pivot proposals.

Each of a batch's proposals independently comes from the backbone kernel with probability
``backbone_weight`` and from the flow otherwise. Both kernels satisfy detailed balance on their
own and the choice does not depend on the state (only on the bond graph, which proposals keep),
so the mixture does too. The flow is only called for its own rows: a batch without them costs
no network evaluation.
"""
import json
from typing import Tuple

import torch
from torch import Tensor, nn

from .backbone import BackboneProposal


class ProposalMixture(nn.Module):
    """Flow proposals mixed with :class:`~.backbone.BackboneProposal` pivots.

    Parameters
    ----------
    flow : nn.Module
        A flow with ``propose(positions, atom_types, num_proposals)`` and ``element_symbols``.
    backbone : BackboneProposal
        The backbone kernel, with the same elements as the flow.
    backbone_weight : float
        Probability that a proposal is a backbone pivot, in [0, 1]. On a molecule without a
        rotatable backbone every proposal comes from the flow.
    """

    def __init__(self, flow: nn.Module, backbone: BackboneProposal, backbone_weight: float) -> None:
        super().__init__()
        if list(flow.element_symbols) != list(backbone.element_symbols):
            raise ValueError(f"the flow's elements {flow.element_symbols} differ from the backbone kernel's "
                             f"{backbone.element_symbols}")
        if not 0.0 <= backbone_weight <= 1.0:
            raise ValueError(f"backbone_weight must lie in [0, 1], got {backbone_weight}")
        self.flow = flow
        self.backbone = backbone
        self.backbone_weight = float(backbone_weight)
        self.element_symbols = list(flow.element_symbols)
        self.config_json = json.dumps(dict(flow=json.loads(flow.config_json), backbone=json.loads(backbone.config_json),
                                           backbone_weight=backbone_weight))

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) float64 in the frame of ``positions`` and their log MH ratios (B,)."""
        backbone, sides, features = self.backbone.residues(positions, atom_types)
        weight = self.backbone_weight if backbone.shape[0] > 0 else 0.0
        pivot = torch.rand(num_proposals, dtype=torch.float64) < weight
        rows = torch.nonzero(pivot).flatten()
        if rows.numel() == num_proposals:  # no flow row: skip the assembly
            return self.backbone.pivots(positions, atom_types, num_proposals, backbone, sides, features)
        proposals = positions.to(torch.float64)[None].repeat(num_proposals, 1, 1)
        log_ratio = torch.zeros(num_proposals, dtype=torch.float64)
        if rows.numel() > 0:
            y, ratio = self.backbone.pivots(positions, atom_types, rows.numel(), backbone, sides, features)
            proposals = proposals.index_copy(0, rows, y.to(torch.float64))
            log_ratio = log_ratio.index_copy(0, rows, ratio)
        rows = torch.nonzero(~pivot).flatten()
        if rows.numel() > 0:
            y, ratio = self.flow.propose(positions, atom_types, rows.numel())
            proposals = proposals.index_copy(0, rows, y.to(torch.float64))
            log_ratio = log_ratio.index_copy(0, rows, ratio)
        return proposals.to(positions.dtype), log_ratio
