"""Training learned detectors.

* :mod:`gnnmimo.train.config`: :class:`TrainConfig`, everything that defines a run;
* :mod:`gnnmimo.train.snr`: the training SNR ranges calibrated on LMMSE;
* :mod:`gnnmimo.train.data`: fresh minibatches and the fixed validation set;
* :mod:`gnnmimo.train.trainer`: :class:`Trainer`, the loop with checkpoints and exact resume.

The losses are in :mod:`gnnmimo.losses`; ``gnnmimo train`` (:mod:`gnnmimo.cli.train`)
is the command line.
"""
from gnnmimo.train.config import TrainConfig
from gnnmimo.train.data import concat_graphs
from gnnmimo.train.snr import auto_snr_ranges
from gnnmimo.train.trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "auto_snr_ranges", "concat_graphs"]
