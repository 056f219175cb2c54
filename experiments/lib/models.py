# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Networks: the supervised CNN (section 2) and the VAE's encoder S and generator G (section 3).

Shapes: images (B, 1, 28, 28); latents (B, d). The generator starts with the linear layer from
the latent to the convolutional decoder's input that section 3.2 requires.
"""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """S: image -> (mu, r = log sigma^2), each (B, d)."""

    def __init__(self, latent_dim: int = 200, channels: int = 32):
        super().__init__()
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c // 2, 4, stride=2, padding=1), nn.ReLU(),  # (B, c/2, 14, 14)
            nn.Conv2d(c // 2, c, 4, stride=2, padding=1), nn.ReLU(),  # (B, c, 7, 7)
            nn.Flatten(),
        )
        self.head = nn.Linear(c * 7 * 7, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.head(self.features(x)).chunk(2, dim=-1)
        return mean, logvar


class Decoder(nn.Module):
    """G: latent (B, d) -> image mean (B, 1, 28, 28) in the data range (tanh for [-1, 1], sigmoid for [0, 1])."""

    def __init__(self, latent_dim: int = 200, channels: int = 32, output: str = "tanh"):
        super().__init__()
        c = channels
        self.c = c
        self.linear = nn.Linear(latent_dim, c * 7 * 7)  # the latent-to-decoder linear layer (section 3.2)
        self.deconv = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.ReLU(),  # (B, c/2, 14, 14)
            nn.ConvTranspose2d(c // 2, 1, 4, stride=2, padding=1),  # (B, 1, 28, 28)
        )
        self.output = {"tanh": torch.tanh, "sigmoid": torch.sigmoid}[output]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(self.deconv(self.linear(z).view(-1, self.c, 7, 7)))
