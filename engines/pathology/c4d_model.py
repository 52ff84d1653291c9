"""The C4d segmenter network (imported only when the CNN engine loads or trains: it imports torch)."""
from __future__ import annotations

import torch
from torch import nn

ARCHITECTURE = "c4d-unet-tiny"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """A 3-level U-Net: RGB in (0-1, normalised inside), one positivity logit per pixel out."""

    def __init__(self, base: int = 16) -> None:
        super().__init__()
        self.base = base
        self.enc1 = _block(3, base)
        self.enc2 = _block(base, base * 2)
        self.enc3 = _block(base * 2, base * 4)
        self.pool = nn.MaxPool2d(2)
        self.up2 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.dec2 = _block(base * 4, base * 2)
        self.up1 = nn.ConvTranspose2d(base * 2, base, 2, stride=2)
        self.dec1 = _block(base * 2, base)
        self.head = nn.Conv2d(base, 1, 1)
        self.register_buffer("mean", torch.tensor([0.80, 0.70, 0.65]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.15, 0.18, 0.20]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.head(d1)[:, 0]
