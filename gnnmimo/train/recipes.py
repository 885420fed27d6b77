"""Named training recipes: the defaults ``gnnmimo train`` uses for a detector family.

A recipe is a set of :class:`~gnnmimo.train.config.TrainConfig` optimisation fields; a
detector class names its family's recipe (``Detector.training_recipe``), ``--recipe NAME``
picks another, and every option given on the command line overrides the recipe's value.
Fields a recipe leaves out keep :class:`TrainConfig`'s defaults, which are RE-MIMO's paper
recipe. Why each recipe is what it is, with the runs behind it, is in ``docs/training.md``.

* ``paper`` (RE-MIMO, and DetNet and MMNet, which train on their own losses): the dataclass
  defaults: batch 256, Adam 1e-4, learning rate × 0.91 on every validation plateau,
  cross-entropy with equal weight per iteration.
* ``few-parameters`` (OAMPNet: a handful of scalars per layer, on its own loss): batch 128,
  Adam 1e-2 with plateau patience 2, gradient norm clipped to 1.
* ``correction`` (detectors whose learned part corrects a classical algorithm's Gaussian
  observation from a zero start: EP-GNN, AMP-GNN, OAMP-GNN, the correcting EP-transformer):
  soft SER plus a tenth of the cross-entropy on the last iteration, batch 128, Adam 1e-3 with
  plateau patience 2, gradient norm clipped to 1, validation every 200 steps on 2000 instances.
"""
from __future__ import annotations

from types import MappingProxyType

#: the TrainConfig fields a recipe may set
RECIPE_FIELDS = ("batch_size", "lr", "clip_grad_norm", "schedule", "warmup", "plateau_factor",
                 "plateau_patience", "loss_weights", "loss", "ce_weight", "eval_every", "val_size")

RECIPES = MappingProxyType({
    "paper": MappingProxyType({}),
    "few-parameters": MappingProxyType({"batch_size": 128, "lr": 1e-2, "plateau_patience": 2,
                                        "clip_grad_norm": 1.0}),
    "correction": MappingProxyType({"loss": "soft-ser", "ce_weight": 0.1, "loss_weights": "last",
                                    "batch_size": 128, "lr": 1e-3, "plateau_patience": 2,
                                    "clip_grad_norm": 1.0, "eval_every": 200, "val_size": 2000}),
})


def recipe(name: str) -> MappingProxyType:
    """The fields of recipe ``name`` (``KeyError`` naming the recipes otherwise)."""
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"no training recipe {name!r}; recipes: {', '.join(RECIPES)}") from None
