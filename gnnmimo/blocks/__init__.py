"""Interchangeable message-passing blocks (see :mod:`gnnmimo.blocks.base`)."""
from gnnmimo.blocks.base import Block, State

__all__ = ["Block", "State"]
