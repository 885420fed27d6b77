"""The detector zoo: every detector behind one registry.

>>> import zoo
>>> zoo.list()                     # registered names
>>> detector = zoo.create("mmse", qam=16)
"""
from zoo.registry import create, create_from_spec, list_detectors as list, parse_spec, register  # noqa: A001
from zoo import linear  # noqa: F401  (registers mf, zf, mmse)
from zoo import remimo  # noqa: F401  (registers remimo)
from zoo import amp, ep, oamp  # noqa: F401  (registers amp, ep, oamp)
from zoo import sdr, sic, tree  # noqa: F401  (registers sdr, vblast, zf-pic, kbest, ml)

__all__ = ["create", "create_from_spec", "list", "parse_spec", "register"]
