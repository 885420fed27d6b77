"""Helpers shared by the test modules: batches, a silent trainer, optional dependencies."""
import importlib
import importlib.util

import pytest

import zoo
from gnnmimo.sampling import MIMOSampler
from gnnmimo.train import TrainConfig, Trainer

#: skip a test when the SDR detector's solver is absent (the ``sdr`` extra)
requires_cvxpy = pytest.mark.skipif(importlib.util.find_spec("cvxpy") is None,
                                    reason="cvxpy is not installed (pip install 'gnnmimo[sdr]')")


def sample_batch(nr=8, nt=4, qam=16, size=16, seed=0, **options):
    """``size`` labelled instances from ``MIMOSampler(nr, nt, qam, **options)`` with seed ``seed``."""
    sampler = MIMOSampler(nr=nr, nt=nt, qam=qam, **options)
    return sampler.sample(size, sampler.generator(seed))


def quiet_trainer(config: TrainConfig, out=None, resume: bool = False, overwrite: bool = False) -> Trainer:
    """A :class:`Trainer` of the registered detector ``config`` names, without progress bar or log."""
    return Trainer(config, lambda: zoo.create(config.detector, config.qam, **config.options), out, resume=resume,
                   progress=False, log=lambda line: None, overwrite=overwrite)


def sionna_module(submodule: str):
    """``sionna.phy.<submodule>``, or skip the test when Sionna is not installed (the ``sionna`` extra)."""
    pytest.importorskip("sionna.phy")
    return importlib.import_module(f"sionna.phy.{submodule}")


#: a ``gnnmimo evaluate`` command line that runs in well under a second
TINY_EVALUATE = ["evaluate", "--detector", "mmse", "--nr", "4", "--nt", "2", "--qam", "4", "--snr", "0,5",
                 "--target-errors", "20", "--max-symbols", "400", "--batch-size", "100", "--no-progress"]


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replaced when present, else appended)."""
    if option not in argv:
        return argv + [option, value]
    argv = list(argv)
    argv[argv.index(option) + 1] = value
    return argv
