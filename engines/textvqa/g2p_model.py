"""Convolutional G2P over a phoneme canvas, trained by random blanking, decoded non-sequentially (NSGD).

After the authors' design (seed 3.1): a grapheme encoder and a canvas encoder, each a stack of residual 1-D
conv blocks (width 3), then a decoder that predicts a symbol for every canvas position. Scaled down for a
2-core CPU (see the model card). We add one attention read from each canvas position into the grapheme
features, because letters and phonemes drift apart in position ("knight" -> N AY T).

Imports torch at import time: only the engine's load/predict and the training script import this module.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from engines.textvqa.g2p_data import BLANK, CANVAS_SYMBOLS, END, GRAPHEMES, MAX_LEN

DEFAULT_ARGS = {"channels": 64, "blocks": 4, "width": 3, "decoder": 128}


class ResidualStack(nn.Module):
    def __init__(self, channels: int, blocks: int, width: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(channels, 2 * channels, width, padding=width // 2) for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        for conv in self.convs:
            x = x + F.glu(conv(x), dim=1) * math.sqrt(0.5)
        return x


class CanvasG2P(nn.Module):
    def __init__(self, channels: int = 96, blocks: int = 4, width: int = 3, decoder: int = 192) -> None:
        super().__init__()
        c = channels
        self.g_embed = nn.Embedding(len(GRAPHEMES) + 1, c, padding_idx=0)
        self.p_embed = nn.Embedding(len(CANVAS_SYMBOLS), c)
        self.g_pos = nn.Parameter(torch.randn(MAX_LEN, c) * 0.1)
        self.p_pos = nn.Parameter(torch.randn(MAX_LEN, c) * 0.1)
        self.g_enc = ResidualStack(c, blocks, width)
        self.p_enc = ResidualStack(c, blocks, width)
        self.query = nn.Linear(c, c)
        self.dec = nn.Sequential(nn.Conv1d(3 * c, decoder, width, padding=width // 2), nn.ReLU(),
                                 nn.Conv1d(decoder, decoder, width, padding=width // 2), nn.ReLU(),
                                 nn.Conv1d(decoder, len(CANVAS_SYMBOLS) - 1, 1))

    def forward(self, graphemes: torch.Tensor, canvas: torch.Tensor) -> torch.Tensor:
        """(B, L) grapheme ids, (B, L) canvas ids -> (B, L, symbols-1) logits over END + phonemes."""
        g = self.g_enc((self.g_embed(graphemes) + self.g_pos).transpose(1, 2))  # (B, C, L)
        p = self.p_enc((self.p_embed(canvas) + self.p_pos).transpose(1, 2))
        q = self.query(p.transpose(1, 2))  # (B, L, C)
        att = torch.einsum("blc,bmc->blm", q, g.transpose(1, 2)) / math.sqrt(g.shape[1])
        att = att.masked_fill((graphemes == 0)[:, None, :], -1e4).softmax(-1)
        read = torch.einsum("blm,bcm->bcl", att, g)
        return self.dec(torch.cat([g, p, read], 1)).transpose(1, 2)


def blank_canvas(target: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random blanking: per word a ratio r ~ U(0,1), each position blanked with probability r (at least one)."""
    b, l = target.shape
    r = torch.rand(b, 1, generator=generator)
    mask = torch.rand(b, l, generator=generator) < r
    force = torch.randint(0, l, (b,), generator=generator)
    mask[torch.arange(b), force] = True
    return target.masked_fill(mask, BLANK), mask


def loss_fn(model: CanvasG2P, graphemes, target, generator=None) -> torch.Tensor:
    canvas, mask = blank_canvas(target, generator)
    logits = model(graphemes, canvas)
    return F.cross_entropy(logits[mask], target[mask] - 1)


@torch.no_grad()
def decode(model: CanvasG2P, graphemes: torch.Tensor, order: str = "nsgd", force: tuple | None = None, *,
           temperature: float = 1.0, return_logits: bool = False):
    """Fill an all-blank canvas one position per step, on the device of ``graphemes`` (the model's).

    ``order='nsgd'``: the blank position whose best symbol is most probable; ``'l2r'``: left to right.
    ``force=(step, rank)`` takes the rank-th best symbol at that step (for alternatives); ``step`` may be a
    (B,) tensor giving each word its own step. ``temperature`` changes only the reported probabilities
    (softmax of logits / T, the card's calibration), never which position or symbol is chosen.
    Returns canvas (B, L), fill steps (B, L, 3: position, symbol, probability) and the summed log-probability,
    on the CPU; with ``return_logits`` also the logits at each step's chosen position (B, L, symbols-1).
    """
    b, l = graphemes.shape
    dev = graphemes.device
    canvas = torch.full((b, l), BLANK, dtype=torch.long, device=dev)
    steps = torch.zeros(b, l, 3, device=dev)
    logp = torch.zeros(b, device=dev)
    rows = torch.arange(b, device=dev)
    chosen_logits = []
    for step in range(l):
        z = model(graphemes, canvas)
        probs = z.softmax(-1)
        conf, sym = probs.max(-1)
        if order == "nsgd":
            pos = conf.masked_fill(canvas != BLANK, -1.0).argmax(1)
        else:
            pos = torch.full((b,), step, dtype=torch.long, device=dev)
        chosen = sym[rows, pos]
        if force is not None:
            hit = torch.as_tensor(force[0], device=dev) == step
            if bool(hit.any()):
                alt = probs[rows, pos].topk(force[1] + 1, -1).indices[:, force[1]]
                chosen = torch.where(hit, alt, chosen)
        zc = z[rows, pos]
        p = (zc / temperature).softmax(-1)[rows, chosen] if temperature != 1.0 else probs[rows, pos, chosen]
        canvas[rows, pos] = chosen + 1
        steps[:, step, 0], steps[:, step, 1], steps[:, step, 2] = pos.float(), (chosen + 1).float(), p
        logp += p.clamp_min(1e-12).log()
        if return_logits:
            chosen_logits.append(zc.float())
    out = (canvas.cpu(), steps.cpu(), logp.cpu())
    return (*out, torch.stack(chosen_logits, 1).cpu()) if return_logits else out


def canvas_end_fix(canvas: torch.Tensor) -> torch.Tensor:
    """Phonemes after the first END are dropped (the canvas is a left-aligned sequence)."""
    out = canvas.clone()
    for row in out:
        ends = (row == END).nonzero()
        if len(ends):
            row[int(ends[0]):] = END
    return out
