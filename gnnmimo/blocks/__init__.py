"""Interchangeable message-passing blocks (see :mod:`gnnmimo.blocks.base`) and their :class:`Chain`."""
from gnnmimo.blocks.base import Block, BlockContractError, State
from gnnmimo.blocks.chain import Chain

__all__ = ["Block", "BlockContractError", "Chain", "State"]
