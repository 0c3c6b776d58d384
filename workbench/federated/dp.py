"""Client-level differential privacy for federated runs (``workbench federate P --dp NOISE:CLIP``).

Flower's central-DP wrapper with server-side fixed clipping
(``flwr.serverapp.strategy.DifferentialPrivacyServerSideFixedClipping``) goes around the FedAvg or
FedProx strategy: each round it clips every client's model update (its new weights minus the global
ones) to the L2 norm CLIP, lets the strategy average the clipped updates, and adds Gaussian noise of
standard deviation NOISE * CLIP / m to the mean of the m sampled clients.  The epsilon this spends is
counted by Opacus' RDP accountant, one Gaussian release per round.  Nothing here clips, adds noise or
accounts by itself.

Two choices make the reported epsilon hold for what Flower computes:

* The clipped updates are averaged with equal weights (each client reports a weight of 1 under the
  key the strategy weights by).  Flower's noise is calibrated to how far one client can move the
  unweighted mean of m clipped updates (CLIP / m); weighted by sample counts, a large client could
  move it further than the noise hides.  Flower's own accountant refuses unequal weights for the same
  reason.
* No amplification by sampling is claimed: Flower draws a fixed number of clients per round without
  replacement, not a Poisson sample, and Flower's own accounting of this wrapper counts every round
  as the full Gaussian mechanism (``sampling_method='no-amplification'``).  So each round is one step
  of Opacus' accountant at sample rate 1.  With ``--fraction-fit 1`` (every client in every round) the
  sampling rate is 1 anyway.

The guarantee is about clients (user-level DP): the global models the server releases (and the final
checkpoint) change little whether or not any one client, with all of its data, took part.  It is
central DP: the server is trusted, sees every client's raw update, and the per-client training metrics
it writes to the run folder (loss, accuracy, sample count) are not covered, as in Flower's wrapper.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from .errors import FederatedError

if TYPE_CHECKING:
    from .app import FederatedSettings

#: the metric every client reports as its weight under DP: the clipped updates are averaged unweighted
DP_WEIGHT = "dp-weight"
_INSTALL = "pip install 'neural-workbench[privacy]'"


class MissingOpacusAccountantError(FederatedError, InputError):
    """Opacus (whose accountant counts the epsilon spent) is not installed."""


def parse_dp(text: str) -> tuple[float, float]:
    """``NOISE:CLIP`` as two numbers; their ranges are checked by :meth:`FederatedSettings.check`.

    Raises:
        FederatedError: naming ``--dp``.
    """
    noise, sep, clip = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(noise), float(clip)
    except ValueError:
        raise FederatedError(f"--dp {text!r}: expected NOISE:CLIP, two numbers (the noise multiplier and the "
                             "clipping norm of a client's model update), e.g. --dp 1.0:0.5") from None


def check_dp(settings: FederatedSettings) -> None:
    """Refuse DP settings Flower's wrapper or the accountant cannot honour, naming the flag.

    Raises:
        FederatedError: naming ``--dp`` or ``--delta``.
    """
    if not settings.dp:
        if settings.dp_noise or settings.dp_clip:
            raise FederatedError("--dp: a noise multiplier or clipping norm is set but differential privacy is off "
                                 "(dp = false)")
        return
    if not (math.isfinite(settings.dp_noise) and settings.dp_noise >= 0):
        raise FederatedError(f"--dp {settings.dp_noise:g}:{settings.dp_clip:g}: the noise multiplier must be a "
                             "number of 0 or more")
    if not (math.isfinite(settings.dp_clip) and settings.dp_clip > 0):
        raise FederatedError(f"--dp {settings.dp_noise:g}:{settings.dp_clip:g}: the clipping norm must be above 0")
    if not 0 < settings.delta < 1:
        raise FederatedError(f"--delta must be in (0, 1), got {settings.delta:g}")


def check_model(module: torch.nn.Module) -> None:
    """Flower's clipping scales, and its noise perturbs, every array of an update: refuse models
    whose state holds integers (BatchNorm's batch counter), which it cannot scale.

    Raises:
        FederatedError: naming ``--dp`` and the state entry.
    """
    for name, value in module.state_dict().items():
        if not value.is_floating_point():
            raise FederatedError(f"--dp: the model's state {name!r} holds {str(value.dtype).replace('torch.', '')} "
                                 "values, which clipping cannot scale (BatchNorm counts its batches); replace "
                                 "BatchNorm by GroupNorm (workbench privacy-fix P) to train it with --dp")


def sampled_clients(settings: FederatedSettings) -> int:
    """How many clients Flower's strategy trains per round (its own rule: the fraction, at least 2)."""
    return max(2, int(settings.clients * settings.fraction_fit))


class ClientLevelAccountant:
    """The epsilon spent so far, from Opacus' RDP accountant: one Gaussian release per round with the
    noise multiplier, at sample rate 1 (see the module's docstring)."""

    SAMPLE_RATE = 1.0

    def __init__(self, noise_multiplier: float, delta: float) -> None:
        try:
            from opacus.accountants import RDPAccountant
        except ImportError:
            raise MissingOpacusAccountantError(f"--dp: the epsilon spent is counted by Opacus' accountant, which is "
                                               f"not installed; install it with {_INSTALL}") from None
        self.noise_multiplier = noise_multiplier
        self.delta = delta
        self.accountant = RDPAccountant()
        self.rounds = 0

    def step(self) -> None:
        """One more private release (a round whose aggregate was published)."""
        self.rounds += 1
        if self.noise_multiplier > 0:
            self.accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.SAMPLE_RATE)

    def epsilon(self) -> float | None:
        """The epsilon spent at ``delta``; ``None`` without noise (no privacy: epsilon is infinite)."""
        if self.noise_multiplier == 0:
            return None
        return float(self.accountant.get_epsilon(self.delta)) if self.rounds else 0.0


def private_strategy(strategy: Any, settings: FederatedSettings) -> Any:
    """``strategy`` wrapped in Flower's server-side fixed-clipping DP; the wrapper also keeps the
    epsilon spent after each round (``epsilon_of_round``)."""
    from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping

    accountant = ClientLevelAccountant(settings.dp_noise, settings.delta)

    class Accounted(DifferentialPrivacyServerSideFixedClipping):  # type: ignore[misc]
        def aggregate_train(self, server_round: int, replies: Any) -> Any:
            arrays, metrics = super().aggregate_train(server_round, replies)
            if arrays is not None:  # Flower released a noisy aggregate: that is what spends privacy
                accountant.step()
                self.epsilon_of_round[server_round] = accountant.epsilon()
            return arrays, metrics

    wrapped = Accounted(strategy, noise_multiplier=settings.dp_noise, clipping_norm=settings.dp_clip,
                        num_sampled_clients=sampled_clients(settings))
    wrapped.client_level = accountant  # not `accountant`: Flower's own optional accountant lives there
    wrapped.epsilon_of_round = {}
    return wrapped
