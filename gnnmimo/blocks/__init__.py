"""Interchangeable message-passing blocks (see :mod:`gnnmimo.blocks.base`)."""
from gnnmimo.blocks.base import Block, BlockContractError, State

__all__ = ["Block", "BlockContractError", "State"]
