"""The data of a training run: fresh minibatches and the fixed validation set.

Every minibatch is drawn fresh from the run's generator (so a resumed run,
which restores the generator, continues the same stream): the user count from
the triangular law over the trained ``Nt`` (mode at the largest), one per
minibatch or one per instance (``nt_mode``), and each instance's SNR
uniformly on its ``Nt``'s range (:mod:`gnnmimo.train.config`).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch

from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler, sample_counts
from gnnmimo.train.config import TrainConfig

#: instances per validation batch (fixed, so the validation set does not depend on batch_size)
VALIDATION_CHUNK = 500


def snr_table(config: TrainConfig, snr_ranges: dict[int, tuple[float, float]], sampler: MIMOSampler) -> Tensor:
    """``[len(config.nts), 2]`` the (low, high) SNR of each trained ``Nt``, on the sampler's device."""
    return torch.tensor([snr_ranges[nt] for nt in config.nts], dtype=sampler.dtype.to_real(), device=sampler.device)


def snr_for(config: TrainConfig, table: Tensor, num_users: Tensor, generator: torch.Generator) -> Tensor:
    """Per-instance SNR ``[B]``, uniform on each instance's range (``table`` from :func:`snr_table`)."""
    low, high = table[(num_users - config.nt[0]) // config.nt_step].unbind(-1)
    u = torch.rand(num_users.shape, generator=generator, device=low.device, dtype=low.dtype)
    return low + (high - low) * u


def sample_minibatch(config: TrainConfig, sampler: MIMOSampler, table: Tensor,
                     generator: torch.Generator, size: int | None = None) -> MIMOGraph:
    """One training minibatch of ``size`` (default ``config.batch_size``) labelled instances (module
    doc); a rank of a data-parallel run draws its part of the global batch."""
    size = size or config.batch_size
    # triangular over the positions in config.nts: P(k) ∝ k + 1, mode at the largest Nt
    positions = sample_counts(0, len(config.nts) - 1, 1 if config.nt_mode == "batch" else size,
                              "triangular", generator, sampler.device)
    counts = config.nt[0] + config.nt_step * positions
    if config.nt_mode == "batch":
        snr = snr_for(config, table, counts.expand(size), generator)
        return sampler.sample(size, generator, snr_db=snr, nt=int(counts))
    sizes = torch.bincount(positions, minlength=len(config.nts)).tolist()
    parts = [sampler.sample(size, generator, nt=nt,
                            snr_db=snr_for(config, table, torch.full((size,), nt, device=counts.device), generator))
             for nt, size in zip(config.nts, sizes) if size]  # one part per user count
    return concat_graphs(parts)


def validation_set(config: TrainConfig, sampler: MIMOSampler,
                   snr_ranges: dict[int, tuple[float, float]]) -> list[MIMOGraph]:
    """Fixed chunks (≤ :data:`VALIDATION_CHUNK` instances, one Nt each), drawn from ``val_seed``."""
    generator = sampler.generator(config.val_seed)
    per_nt = max(1, config.val_size // len(config.nts))
    chunks = []
    for nt in config.nts:  # a handful of user counts
        low, high = snr_ranges[nt]
        for start in range(0, per_nt, VALIDATION_CHUNK):
            size = min(VALIDATION_CHUNK, per_nt - start)
            snr = low + (high - low) * torch.rand(size, generator=generator, device=sampler.device,
                                                  dtype=sampler.dtype.to_real())
            chunks.append(sampler.sample(size, generator, snr_db=snr, nt=nt))
    return chunks


def concat_graphs(graphs: list[MIMOGraph]) -> MIMOGraph:
    """One batch holding the instances of several batches, in order (every attribute kept): PyG's
    collation, which a :class:`MIMOGraph` supports as a batch of its instances."""
    return graphs[0] if len(graphs) == 1 else Batch.from_data_list(graphs)
