"""The detector zoo: every detector behind one registry.

>>> import zoo
>>> zoo.list()                     # registered names
>>> detector = zoo.create("mmse", qam=16)
>>> zoo.list_pretrained()          # trained checkpoints shipped in zoo/pretrained
>>> detector = zoo.load("remimo-nr16-nt4-8-qam4")   # a ready, trained detector
"""
from gnnmimo.checkpoint import list_pretrained, load_checkpoint as load
from zoo.registry import create, create_from_spec, list_detectors as list, parse_spec, register  # noqa: A001
from zoo import linear  # noqa: F401  (registers mf, zf, mmse)
from zoo import remimo  # noqa: F401  (registers remimo)
from zoo import amp, ep, oamp  # noqa: F401  (registers amp, ep, oamp)
from zoo import sdr, sic, tree  # noqa: F401  (registers sdr, vblast, zf-pic, kbest, ml)
from zoo import detnet, mmnet, oampnet  # noqa: F401  (registers detnet, mmnet, oampnet, oampnet2)
from zoo import ampgnn, epgnn, gnn  # noqa: F401  (registers ampgnn, epgnn, gnn)
from zoo import ep_transformer, oamp_gnn  # noqa: F401  (registers the hybrids ep-transformer, oamp-gnn)

__all__ = ["create", "create_from_spec", "list", "list_pretrained", "load", "parse_spec", "register"]
