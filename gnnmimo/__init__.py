"""gnnmimo: MIMO symbol detection on PyTorch Geometric graphs.

The public pieces: :class:`~gnnmimo.constellation.QAM`,
:class:`~gnnmimo.channels.ChannelModel`, :class:`~gnnmimo.graph.MIMOGraph`,
:class:`~gnnmimo.sampling.MIMOSampler`, :class:`~gnnmimo.detector.Detector`
and the blocks in :mod:`gnnmimo.blocks`. Detectors live in the ``zoo`` package.
"""
from importlib.metadata import PackageNotFoundError, version

from gnnmimo.channels import ChannelModel
from gnnmimo.constellation import QAM
from gnnmimo.detector import Detection, Detector
from gnnmimo.graph import MIMOGraph
from gnnmimo.sampling import MIMOSampler

try:
    __version__ = version("gnnmimo")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["ChannelModel", "Detection", "Detector", "MIMOGraph", "MIMOSampler", "QAM", "__version__"]
