"""BTC: the bi-directional transformer for chord recognition (Park et al., ISMIR 2019), in torch.

Imported only when a BTC engine loads or a training script runs (torch is heavy). The layout follows the
authors' code: a linear projection of the 144-bin log-CQT to ``hidden``, sinusoidal timing signal, then
``layers`` blocks of [forward-masked multi-head self-attention | backward-masked multi-head self-attention]
-> concatenation -> linear, each with residual + layer norm, then a position-wise feed-forward of two
1-D convolutions (kernel 3, both sides padded), and a linear soft-max output over the chord vocabulary.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_ARGS = {"n_bins": 144, "hidden": 128, "heads": 4, "layers": 8, "filter": 128, "dropout": 0.2,
                "n_classes": 25, "seq_len": 108}


def timing_signal(length: int, channels: int, min_timescale: float = 1.0, max_timescale: float = 1.0e4):
    position = torch.arange(length, dtype=torch.float32)
    num_timescales = channels // 2
    log_inc = math.log(float(max_timescale) / float(min_timescale)) / max(num_timescales - 1, 1)
    inv = min_timescale * torch.exp(torch.arange(num_timescales, dtype=torch.float32) * -log_inc)
    scaled = position[:, None] * inv[None, :]
    signal = torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)
    if channels % 2:
        signal = F.pad(signal, (0, 1))
    return signal  # (length, channels)


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention restricted to one direction (past-and-present or present-and-future)."""

    def __init__(self, hidden: int, heads: int, dropout: float, direction: str) -> None:
        super().__init__()
        self.heads, self.direction = heads, direction
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.dropout = dropout

    def forward(self, x):
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        ones = torch.ones(t, t, dtype=torch.bool, device=x.device)
        allowed = torch.tril(ones) if self.direction == "forward" else torch.triu(ones)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, h))


class BiDirectionalLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, filt: int, dropout: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(hidden)
        self.fwd = MaskedSelfAttention(hidden, heads, dropout, "forward")
        self.bwd = MaskedSelfAttention(hidden, heads, dropout, "backward")
        self.merge = nn.Linear(2 * hidden, hidden)
        self.norm_ffn = nn.LayerNorm(hidden)
        self.conv1 = nn.Conv1d(hidden, filt, 3, padding=1)
        self.conv2 = nn.Conv1d(filt, hidden, 3, padding=1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        y = self.norm_attn(x)
        y = self.merge(torch.cat([self.fwd(y), self.bwd(y)], dim=-1))
        x = x + self.drop(y)
        y = self.norm_ffn(x).transpose(1, 2)
        y = self.conv2(self.drop(F.relu(self.conv1(y)))).transpose(1, 2)
        return x + self.drop(y)


class BTC(nn.Module):
    def __init__(self, n_bins: int = 144, hidden: int = 128, heads: int = 4, layers: int = 8, filter: int = 128,
                 dropout: float = 0.2, n_classes: int = 25, seq_len: int = 108) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.register_buffer("feat_mean", torch.zeros(n_bins))
        self.register_buffer("feat_std", torch.ones(n_bins))
        self.proj = nn.Linear(n_bins, hidden, bias=False)
        self.register_buffer("timing", timing_signal(seq_len, hidden), persistent=False)
        self.drop = nn.Dropout(dropout)
        self.layers = nn.ModuleList(BiDirectionalLayer(hidden, heads, filter, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def forward(self, x):
        """x: (batch, frames <= seq_len, n_bins) raw log-CQT -> logits (batch, frames, n_classes)."""
        x = (x - self.feat_mean) / self.feat_std
        t = x.shape[1]
        timing = self.timing[:t] if t <= self.timing.shape[0] else timing_signal(t, self.timing.shape[1]).to(x)
        x = self.drop(self.proj(x) + timing)
        for layer in self.layers:
            x = layer(x)
        return self.classifier(self.norm(x))


def build(args: dict) -> BTC:
    merged = {**DEFAULT_ARGS, **args}
    return BTC(**{k: merged[k] for k in DEFAULT_ARGS})


@torch.no_grad()
def predict_frames(model: BTC, logcqt, cancel=None, progress=None):
    """Soft-max probabilities (frames, n_classes) for a whole recording, 108-frame windows, no overlap
    except that the last window is aligned to the end."""
    import numpy as np

    model.eval()
    feats = torch.as_tensor(np.asarray(logcqt, dtype=np.float32))
    n = feats.shape[0]
    L = model.seq_len
    device = next(model.parameters()).device
    if n <= L:
        probs = torch.softmax(model(feats[None].to(device)), dim=-1)[0]
        return probs.cpu().numpy()
    starts = list(range(0, n - L + 1, L))
    if starts[-1] + L < n:
        starts.append(n - L)
    out = torch.zeros(n, model.classifier.out_features)
    batch = 16
    for b0 in range(0, len(starts), batch):
        if cancel is not None:
            cancel.raise_if_cancelled()
        if progress is not None:
            progress(b0 / len(starts))
        chunk = starts[b0:b0 + batch]
        x = torch.stack([feats[s:s + L] for s in chunk]).to(device)
        p = torch.softmax(model(x), dim=-1).cpu()
        for s, pi in zip(chunk, p):
            out[s:s + L] = pi
    return out.numpy()
