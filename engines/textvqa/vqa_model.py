"""VQA answering networks (MLP fusion and stacked attention), and the MCL / CMCL / MCL-KD losses.

Imports torch at module import: only engine ``load``/``predict`` and the training script import this module.
Scaled down from the seed (CLEVR, VGG features, 1,024-unit MLP) to fit a 2-core CPU: a 3-layer CNN over a
64x64 scene gives an 8x8 grid of features (plus two coordinate channels), a GRU encodes the question.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

DEFAULT_ARGS = {"vocab": 45, "answers": 22, "channels": 32, "embed": 32, "hidden": 96, "hops": 2}


class ImageEncoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, c // 2, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,3,64,64) float in [0,1] -> (B, 64 regions, channels + 2) with (x, y) coordinates appended."""
        f = self.net(images * 2 - 1)
        b, c, h, w = f.shape
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=f.device), torch.linspace(-1, 1, w, device=f.device),
                                indexing="ij")
        coords = torch.stack([xs, ys]).expand(b, 2, h, w)
        return torch.cat([f, coords], 1).flatten(2).transpose(1, 2)


class QuestionEncoder(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.gru = nn.GRU(embed, hidden, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens > 0).sum(1).clamp(min=1)
        out, _ = self.gru(self.embed(tokens))
        return out[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]


class VqaNet(nn.Module):
    """``kind='mlp'``: image grid flattened, concatenated with the question, two hidden layers.
    ``kind='san'``: stacked attention (Yang et al. 2016), ``hops`` attention layers over the 8x8 grid."""

    def __init__(self, kind: str, vocab: int, answers: int, channels: int = 48, embed: int = 32,
                 hidden: int = 96, hops: int = 2) -> None:
        super().__init__()
        self.kind = kind
        self.image = ImageEncoder(channels)
        self.question = QuestionEncoder(vocab, embed, hidden)
        d = channels + 2
        if kind == "mlp":
            self.img_proj = nn.Linear(d * 64, hidden)
            self.head = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(),
                                      nn.Linear(2 * hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, answers))
        elif kind == "san":
            self.v_proj = nn.Linear(d, hidden)
            self.att_v = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(hops))
            self.att_q = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(hops))
            self.att_p = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(hops))
            self.head = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, answers))
        else:
            raise ValueError(f"unknown VQA network kind {kind!r}")

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, scene_index: torch.Tensor | None = None,
                return_attention: bool = False):
        """``images`` may hold one entry per scene and ``scene_index`` map each question to its scene, so the
        CNN runs once per scene however many questions are asked about it."""
        v = self.image(images)
        if scene_index is not None:
            v = v[scene_index]
        u = self.question(tokens)
        if self.kind == "mlp":
            fused = torch.cat([F.relu(self.img_proj(v.flatten(1))), u], 1)
            logits = self.head(fused)
            return (logits, None) if return_attention else logits
        v = torch.tanh(self.v_proj(v))
        maps = []
        for wv, wq, wp in zip(self.att_v, self.att_q, self.att_p):
            h = torch.tanh(wv(v) + wq(u)[:, None, :])
            p = torch.softmax(wp(h).squeeze(-1), dim=1)
            maps.append(p)
            u = u + (p[..., None] * v).sum(1)
        logits = self.head(u)
        return (logits, torch.stack(maps, 1)) if return_attention else logits


class Ensemble(nn.Module):
    def __init__(self, kind: str, members: int, **args) -> None:
        super().__init__()
        self.members = nn.ModuleList(VqaNet(kind, **args) for _ in range(members))

    def forward(self, images, tokens, scene_index=None, return_attention: bool = False):
        outs = [m(images, tokens, scene_index, return_attention=return_attention) for m in self.members]
        if return_attention:
            return torch.stack([o[0] for o in outs]), [o[1] for o in outs]
        return torch.stack(outs)  # (M, B, A)


# -- MCL-family assignment and losses ----------------------------------------------------------------
def subset_masks(members: int, k: int, device=None) -> torch.Tensor:
    """All C(M, k) assignments as a (S, M) 0/1 matrix."""
    rows = [[1.0 if m in c else 0.0 for m in range(members)] for c in itertools.combinations(range(members), k)]
    return torch.tensor(rows, device=device)


def kd_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-example cross-entropy of softmax(teacher/tau) against log_softmax(student/tau) (the authors' form)."""
    return -(F.softmax(teacher_logits / tau, -1) * F.log_softmax(student_logits / tau, -1)).sum(-1)


def confidence_loss(student_logits: torch.Tensor) -> torch.Tensor:
    """CMCL's penalty for non-assigned models: KL(uniform || p) up to a constant (pushes them to be unsure)."""
    return -F.log_softmax(student_logits, -1).mean(-1)


def mcl_loss(method: str, logits: torch.Tensor, target: torch.Tensor, k: int, *, teacher: torch.Tensor | None = None,
             beta: float = 0.0, tau: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Loss and assignment (M, B) for ``method`` in ie / mcl / cmcl / mclkd.

    Per example, the subset of k models minimising sum_assigned CE + beta * sum_others penalty is chosen by
    enumerating all C(M, k) subsets (penalty: none for MCL, confidence for CMCL, KD to the frozen teacher for
    MCL-KD). The chosen models get the task loss, the others the penalty.
    """
    m, b, a = logits.shape
    ce = F.cross_entropy(logits.reshape(m * b, a), target.repeat(m), reduction="none").reshape(m, b)
    if method == "ie":
        return ce.sum(0).mean(), torch.ones_like(ce)
    if method == "mcl":
        other = torch.zeros_like(ce)
    elif method == "cmcl":
        other = beta * confidence_loss(logits)
    elif method == "mclkd":
        other = beta * kd_loss(teacher, logits, tau)
    else:
        raise ValueError(method)
    masks = subset_masks(m, k, logits.device)  # (S, M)
    cost = masks @ ce.detach() + (1 - masks) @ other.detach()  # (S, B)
    assign = masks[cost.argmin(0)].T  # (M, B)
    loss = (assign * ce + (1 - assign) * other).sum(0).mean()
    return loss, assign


def assignment(method: str, logits, target, k, teacher=None, beta=0.0, tau=1.0):
    with torch.no_grad():
        return mcl_loss(method, logits, target, k, teacher=teacher, beta=beta, tau=tau)[1]
