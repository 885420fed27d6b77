"""The detector zoo: every published detector, registered by name, and their trained weights.

>>> import zoo
>>> zoo.list()                     # registered names
>>> detector = zoo.create("mmse", qam=16)
>>> zoo.list_pretrained()          # trained checkpoints shipped in zoo/pretrained
>>> detector = zoo.load("remimo-nr16-nt4-8-qam4")   # a ready, trained detector

The registry itself is the library's (:mod:`gnnmimo.registry`): detectors
defined outside the zoo register there too and sit beside these.
"""
from gnnmimo.registry import create, create_from_spec, list_detectors as list, parse_spec, register  # noqa: A001
from zoo import linear  # noqa: F401  (registers mf, zf, mmse)
from zoo import remimo  # noqa: F401  (registers remimo)
from zoo import amp, ep, oamp  # noqa: F401  (registers amp, ep, oamp)
from zoo import sdr, sic, tree  # noqa: F401  (registers sdr, vblast, zf-pic, kbest, ml)
from zoo import detnet, mmnet, oampnet  # noqa: F401  (registers detnet, mmnet, oampnet, oampnet2)
from zoo import ampgnn, epgnn, gnn  # noqa: F401  (registers ampgnn, epgnn, gnn)
from zoo import ep_transformer, oamp_gnn  # noqa: F401  (registers the hybrids ep-transformer, oamp-gnn)
from zoo import langevin  # noqa: F401  (registers langevin)
from zoo.weights import export_pretrained, list_pretrained, load, resolve

__all__ = ["create", "create_from_spec", "export_pretrained", "list", "list_pretrained", "load", "parse_spec",
           "register", "resolve"]
