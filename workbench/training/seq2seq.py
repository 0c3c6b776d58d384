"""Sequence to sequence: greedy decoding, and validation examples shown as text.

Training feeds the decoder the true previous tokens (teacher forcing, :func:`~.tasks.model_inputs`);
validation also lets the model write each target by itself, one token at a time from BOS, feeding
back its own choices, as a translator would run: only that tells whether whole sequences come out
right (``sequence_accuracy``).
"""

from __future__ import annotations

import torch

from ..data.base import BOS, EOS, PAD


def greedy_decode(model: torch.nn.Module, source: torch.Tensor, steps: int, fixed_length: bool = False) -> torch.Tensor:
    """The model's own target for each source: the most likely token at each step, until EOS.

    Args:
        model: ``model(source, target_in) -> [N, T, vocabulary]`` (a tuple's first output counts).
        source: source token ids [N, S].
        steps: the longest target to write (the targets' length without BOS).
        fixed_length: feed the target at its full length ``steps`` every time (padded), for a target Input
            of a fixed size; a causal decoder's step t reads only steps up to t, so both ways agree.

    Returns:
        [N, steps] token ids; after a sequence's EOS, PAD.
    """
    n = source.shape[0]
    fed = torch.full((n, steps), PAD, dtype=torch.long, device=source.device)
    fed[:, 0] = BOS
    written = torch.full((n, steps), PAD, dtype=torch.long, device=source.device)
    done = torch.zeros(n, dtype=torch.bool, device=source.device)
    for t in range(steps):
        out = model(source, fed if fixed_length else fed[:, : t + 1])
        logits = out[0] if isinstance(out, tuple) else out
        token = logits[:, t].argmax(-1).masked_fill(done, PAD)
        written[:, t] = token
        done |= token == EOS
        if bool(done.all()):
            break
        if t + 1 < steps:
            fed[:, t + 1] = token
    return written


def pairs_text(vocabulary: list[str], source: torch.Tensor, written: torch.Tensor, target: torch.Tensor,
               count: int = 8) -> str:
    """A few validation examples, one a line: ``source -> what the model wrote`` and, when that is
    wrong, what it should have been."""

    def text(ids: torch.Tensor) -> str:
        out = []
        for i in ids.tolist():
            if i == EOS:
                break
            if i not in (PAD, BOS):
                out.append(vocabulary[i] if 0 <= i < len(vocabulary) else "?")
        return "".join(out)

    lines = []
    for src, got, want in zip(source[:count], written[:count], target[:count], strict=False):
        right = bool(((got == want) | (want == PAD)).all())
        lines.append(f"{text(src)} -> {text(got)}" + ("" if right else f"   (expected: {text(want)})"))
    return "\n".join(lines)
