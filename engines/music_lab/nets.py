"""The networks (torch). Imported only inside functions: the engine registry must not pay for torch.

- ``BarBLSTM``: Lim et al. 2017 (seed 6.1): a bi-directional LSTM over bars, 12-d pitch-class input per bar,
  a softmax over 24 major/minor chords per bar.
- ``BarDNN``: the per-bar classifier baseline (same input, no context).
- ``BarHarmonizers``: the harmonizer's weights file as one module: the BLSTM (``blstm.*``), the DNN (``dnn.*``)
  and the HMM baseline's tables as buffers (``hmm.*``), so the engine template loads and checks it in one go.
- ``MelodyCVAE``: seed 3.3 [13]: chords -> prior network p(z|c); melody + chords -> posterior q(z|x,c);
  an autoregressive GRU decoder p(x|z,c) over a 16th-note grid.
"""
from __future__ import annotations

import torch
from torch import nn


class BarBLSTM(nn.Module):
    def __init__(self, n_in: int = 12, hidden: int = 128, layers: int = 2, n_out: int = 24, dropout: float = 0.2):
        super().__init__()
        self.inp = nn.Linear(n_in, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 12) -> (B, T, 24) logits
        h, _ = self.lstm(torch.tanh(self.inp(x)))
        return self.out(self.drop(h))


class BarDNN(nn.Module):
    def __init__(self, n_in: int = 12, hidden: int = 256, n_out: int = 24, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChordHMMTables(nn.Module):
    """The HMM baseline's log tables (initial, transition from -> to, pitch-class emission) as buffers."""

    def __init__(self, n_chords: int = 24, n_pc: int = 12):
        super().__init__()
        self.register_buffer("log_init", torch.zeros(n_chords))
        self.register_buffer("log_trans", torch.zeros(n_chords, n_chords))
        self.register_buffer("log_emit", torch.zeros(n_chords, n_pc))


class BarHarmonizers(nn.Module):
    """The three harmonizers of one weights file. ``forward`` runs both networks on the same bars."""

    def __init__(self, blstm: dict, dnn: dict):
        super().__init__()
        self.blstm = BarBLSTM(**blstm)
        self.dnn = BarDNN(**dnn)
        self.hmm = ChordHMMTables(int(blstm.get("n_out", 24)), int(blstm.get("n_in", 12)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, 12) -> (B, 2, T, 24): BLSTM and DNN logits
        return torch.stack([self.blstm(x), self.dnn(x)], 1)


class MelodyCVAE(nn.Module):
    """Tokens: 0 = rest, 1 = hold, 2.. = pitch (MIDI - pitch_lo + 2); START = n_tokens. Chords per step: 0..23."""

    def __init__(self, n_tokens: int, n_chords: int = 24, hidden: int = 128, latent: int = 16, emb: int = 32):
        super().__init__()
        self.n_tokens, self.latent = n_tokens, latent
        self.chord_emb = nn.Embedding(n_chords, emb)
        self.tok_emb = nn.Embedding(n_tokens + 1, emb)
        self.pos_emb = nn.Embedding(16, 8)
        self.prior_rnn = nn.GRU(emb + 8, hidden, batch_first=True, bidirectional=True)
        self.prior_head = nn.Linear(2 * hidden, 2 * latent)
        self.post_rnn = nn.GRU(2 * emb + 8, hidden, batch_first=True, bidirectional=True)
        self.post_head = nn.Linear(2 * hidden, 2 * latent)
        self.z_to_h = nn.Linear(latent, hidden)
        self.dec_rnn = nn.GRU(2 * emb + 8 + latent, hidden, batch_first=True)
        self.dec_out = nn.Linear(hidden, n_tokens)

    def _pos(self, B: int, T: int, device) -> torch.Tensor:
        return self.pos_emb(torch.arange(T, device=device) % 16).unsqueeze(0).expand(B, T, -1)

    def prior(self, chords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = chords.shape
        h, _ = self.prior_rnn(torch.cat([self.chord_emb(chords), self._pos(B, T, chords.device)], -1))
        mu, logvar = self.prior_head(h.mean(1)).chunk(2, -1)
        return mu, logvar.clamp(-8, 4)

    def posterior(self, tokens: torch.Tensor, chords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = chords.shape
        x = torch.cat([self.tok_emb(tokens), self.chord_emb(chords), self._pos(B, T, chords.device)], -1)
        h, _ = self.post_rnn(x)
        mu, logvar = self.post_head(h.mean(1)).chunk(2, -1)
        return mu, logvar.clamp(-8, 4)

    def decode_logits(self, z: torch.Tensor, chords: torch.Tensor, prev_tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``prev_tokens`` (B, T) = the token before each step (START or the last one)."""
        B, T = chords.shape
        zz = z.unsqueeze(1).expand(B, T, -1)
        x = torch.cat([self.tok_emb(prev_tokens), self.chord_emb(chords), self._pos(B, T, chords.device), zz], -1)
        h, _ = self.dec_rnn(x, torch.tanh(self.z_to_h(z)).unsqueeze(0))
        return self.dec_out(h)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, chords: torch.Tensor, first_prev: torch.Tensor, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        B, T = chords.shape
        h = torch.tanh(self.z_to_h(z)).unsqueeze(0)
        prev = first_prev
        pos = self._pos(B, T, chords.device)
        ce = self.chord_emb(chords)
        out = []
        for t in range(T):
            x = torch.cat([self.tok_emb(prev), ce[:, t], pos[:, t], z], -1).unsqueeze(1)
            o, h = self.dec_rnn(x, h)
            logits = self.dec_out(o[:, 0]) / max(temperature, 1e-3)
            probs = torch.softmax(logits, -1)
            if generator is not None and probs.device != generator.device:
                # draw where the generator lives (the CPU), so a seed gives the same melody on every device
                tok = torch.multinomial(probs.to(generator.device), 1, generator=generator)[:, 0].to(probs.device)
            else:
                tok = torch.multinomial(probs, 1, generator=generator)[:, 0]
            out.append(tok)
            prev = tok
        return torch.stack(out, 1)
