"""The tensor operations of self-supervised learning, free of the engine: augmented views, NT-Xent,
patch and token masks, and the evaluations people report (linear probe, k-nearest neighbours).

Every random choice draws from a caller's ``torch.Generator``, so a seed fixes the views and masks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewPipeline:
    """SimCLR-style random views of a batch of images ``[B, C, H, W]``, applied in this order:

    1. random resized crop: a crop covering a share of the area drawn from ``[crop_min, 1]`` with an
       aspect ratio in ``[3/4, 4/3]``, resized back to ``H x W`` (bilinear; ``crop_min = 1``: no crop);
    2. horizontal flip with probability 1/2 (``flip``);
    3. intensity jitter: ``x * c + b`` with contrast ``c`` in ``[1 - jitter, 1 + jitter]`` and
       brightness ``b`` in ``[-jitter, jitter]`` x the batch's standard deviation, per image;
    4. Gaussian noise of standard deviation ``noise`` x the batch's standard deviation.
    """

    crop_min: float = 0.5
    flip: bool = False
    jitter: float = 0.4
    noise: float = 0.1

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        dev = x.device
        scale = torch.ones(b)
        if self.crop_min < 1:
            area = self.crop_min + (1 - self.crop_min) * torch.rand(b, generator=gen)
            log_ratio = (torch.rand(b, generator=gen) * 2 - 1) * math.log(4 / 3)
            ratio = torch.exp(log_ratio)
            sw = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
            sh = torch.sqrt(area / ratio).clamp(max=1.0)
            # the crop's centre, anywhere the crop stays inside the image (normalised coordinates)
            tx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sw)
            ty = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sh)
        else:
            sw, sh, tx, ty = scale, scale.clone(), torch.zeros(b), torch.zeros(b)
        if self.flip:
            sw = torch.where(torch.rand(b, generator=gen) < 0.5, -sw, sw)
        out = x
        if self.crop_min < 1 or self.flip:
            theta = torch.zeros(b, 2, 3)
            theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, tx, sh, ty
            grid = F.affine_grid(theta.to(dev, x.dtype), list(x.shape), align_corners=False)
            out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        spread = x.detach().float().std().clamp_min(1e-6).to(x.dtype)
        if self.jitter > 0:
            c = 1 + (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * self.jitter
            shift = (torch.rand(b, 1, 1, 1, generator=gen) * 2 - 1) * self.jitter
            out = out * c.to(dev, x.dtype) + shift.to(dev, x.dtype) * spread
        if self.noise > 0:
            out = out + torch.randn(out.shape, generator=gen).to(dev, x.dtype) * (self.noise * spread)
        return out


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The NT-Xent loss of SimCLR (Chen et al. 2020): each of the ``2B`` embeddings must pick its other
    view out of the ``2B - 1`` others, by cosine similarity / ``temperature``; averaged over all ``2B``."""
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float().flatten(1), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


def patch_mask(shape: torch.Size, patch: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """A boolean mask ``[B, 1, H, W]``: ``round(ratio x patches)`` of each image's ``patch x patch``
    patches, chosen at random (at least one), are True (masked).  ``H`` and ``W`` must be multiples of
    ``patch``."""
    b, _, h, w = shape
    gh, gw = h // patch, w // patch
    n = gh * gw
    k = min(n, max(1, round(ratio * n)))
    order = torch.rand(b, n, generator=gen).argsort(1)
    grid = torch.zeros(b, n, dtype=torch.bool)
    grid.scatter_(1, order[:, :k], True)
    grid = grid.reshape(b, 1, gh, gw)
    return grid.repeat_interleave(patch, 2).repeat_interleave(patch, 3)


def token_mask(shape: torch.Size, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """A boolean mask ``[B, T]`` with ``round(ratio x T)`` random positions per sequence True (at least one)."""
    b, t = shape
    k = min(t, max(1, round(ratio * t)))
    order = torch.rand(b, t, generator=gen).argsort(1)
    mask = torch.zeros(b, t, dtype=torch.bool)
    mask.scatter_(1, order[:, :k], True)
    return mask


def masked_mse(out: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked elements only (``mask`` broadcasts over channels)."""
    m = mask.expand_as(target).to(out.dtype)
    return ((out.float() - target.float()) ** 2 * m).sum() / m.sum().clamp_min(1)


# --------------------------------------------------------------------------- evaluation


def standardize_features(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Features flattened and standardised with the training features' mean and std."""
    train = train.flatten(1).double()
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return [(t.flatten(1).double() - mean) / std for t in (train, *others)]


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 classes: int, weight_decay: float = 1e-3, iterations: int = 100) -> float:
    """Accuracy of a multinomial logistic regression fitted on frozen features (full batch, L-BFGS,
    L2 penalty ``weight_decay``; standardised features); the standard linear evaluation protocol."""
    xtr, xte = standardize_features(train_x, test_x)
    w = torch.zeros(xtr.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + bias, train_y) + weight_decay * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return float(((xte @ w + bias).argmax(1) == test_y).double().mean())


def knn_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 classes: int, k: int = 20) -> float:
    """Accuracy of a k-nearest-neighbour vote by cosine similarity on the features (ties go to the
    lower class); ``k`` is capped at the training set's size."""
    a = F.normalize(train_x.flatten(1).double(), dim=1)
    q = F.normalize(test_x.flatten(1).double(), dim=1)
    k = min(k, a.shape[0])
    right = 0
    for start in range(0, q.shape[0], 1024):  # bounded memory: 1024 x N similarities at a time
        idx = (q[start:start + 1024] @ a.T).topk(k, dim=1).indices
        votes = torch.zeros(idx.shape[0], classes, dtype=torch.long)
        votes.scatter_add_(1, train_y[idx], torch.ones_like(idx))
        right += int((votes.argmax(1) == test_y[start:start + 1024]).sum())
    return right / max(1, q.shape[0])
