"""The adversarial task: a generator (the project's main graph, fed with noise) and a
discriminator (``project.graphs["discriminator"]``, one logit per sample), trained in
alternating steps with separate optimizers (non-saturating GAN loss)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class GanParts:
    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    noise_shape: tuple[int, ...]


def first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


def noise(parts: GanParts, batch: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    return torch.randn((batch, *parts.noise_shape), generator=generator).to(device)


def gan_step(parts: GanParts, real: torch.Tensor, lr: float, clip: float, d_lr_scale: float = 1.0,
             d_steps: int = 1) -> tuple[float, float]:
    """``d_steps`` discriminator steps (each on new generated samples, the same real batch), then
    one generator step; the discriminator learns at ``lr * d_lr_scale`` (two time-scale updates,
    Heusel et al. 2017).  Returns (generator loss, last discriminator loss)."""
    g, d = parts.generator, parts.discriminator
    for opt, rate in ((parts.opt_g, lr), (parts.opt_d, lr * d_lr_scale)):
        for group in opt.param_groups:
            group["lr"] = rate
    b = real.shape[0]
    ones = torch.ones(b, 1, device=real.device)
    zeros = torch.zeros(b, 1, device=real.device)
    for _ in range(d_steps):
        fake = first(g(noise(parts, b, real.device)))
        parts.opt_d.zero_grad(set_to_none=True)
        d_loss = (F.binary_cross_entropy_with_logits(first(d(real)).reshape(b, 1), ones)
                  + F.binary_cross_entropy_with_logits(first(d(fake.detach())).reshape(b, 1), zeros))
        d_loss.backward()
        if clip > 0:
            nn.utils.clip_grad_norm_(d.parameters(), clip)
        parts.opt_d.step()
    parts.opt_g.zero_grad(set_to_none=True)
    g_loss = F.binary_cross_entropy_with_logits(first(d(fake)).reshape(b, 1), ones)
    g_loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(g.parameters(), clip)
    parts.opt_g.step()
    return float(g_loss.detach()), float(d_loss.detach())


def gan_validate(parts: GanParts, real: torch.Tensor, seed: int, count: int = 512) -> tuple[dict[str, float], torch.Tensor]:
    """Discriminator accuracy on real and on generated samples, and 16 samples for a grid."""
    g, d = parts.generator.eval(), parts.discriminator.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fake = first(g(noise(parts, count, real.device, gen)))
        d_fake = first(d(fake)).reshape(-1)
        d_real = first(d(real[:count])).reshape(-1)
    parts.generator.train()
    parts.discriminator.train()
    metrics = {
        "d_accuracy_generated": float((d_fake < 0).float().mean()),  # 0.5 = the generator fools D half the time
        "d_accuracy_real": float((d_real > 0).float().mean()),
        "loss": float(F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))),
    }
    return metrics, fake[:16].float().cpu()
