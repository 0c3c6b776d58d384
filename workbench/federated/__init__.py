"""Federated training with Flower: N clients simulated on this machine (Flower's simulation
engine on Ray), IID or Dirichlet partitions of the project's training split, Flower's FedAvg or
FedProx, per-round global and per-client metrics written to a run folder the dashboard reads;
and the commands to run the same apps on real machines."""

from __future__ import annotations

from .app import FederatedError, FederatedSettings, MissingFlowerError
from .partition import PartitionError, Partitioning, label_histograms, parse_partitioning, partition
from .simulate import deployment_commands, simulate

__all__ = ["FederatedError", "FederatedSettings", "MissingFlowerError", "PartitionError", "Partitioning",
           "deployment_commands", "label_histograms", "parse_partitioning", "partition", "simulate"]
