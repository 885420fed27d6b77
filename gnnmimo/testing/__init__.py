"""Property-based testing of MIMO detectors.

Public helpers to prove properties of any :class:`~gnnmimo.detector.Detector`
— the zoo's and your own:

* strategies (need Hypothesis, ``pip install gnnmimo[test]``):
  :func:`mimo_configs`, :func:`mimo_batches`, :func:`channel_models`;
* assertions (plain torch, raise ``AssertionError`` with a diagnosis):
  :func:`assert_permutation_equivariant`, :func:`assert_batch_independent`,
  :func:`assert_generalises_over_user_counts`, :func:`assert_well_formed`;
  :func:`permute_users`, the vectorised within-instance permutation they
  rely on; and :func:`randomised_parameters`, the perturbed copy of a
  detector they also check (so that zero-initialised learned heads act);
* Hypothesis settings profiles ``"ci"`` and ``"dev"``, registered on import.

Example::

    from hypothesis import given, settings
    from gnnmimo.testing import mimo_batches, assert_permutation_equivariant, \\
        assert_batch_independent

    settings.load_profile("ci")

    @given(mimo_batches(nr=8, nt=(1, 8), qam=16))
    def test_properties(graph):
        detector = MyDetector(qam=16)
        assert_permutation_equivariant(detector, graph)
        assert_batch_independent(detector, graph)
"""
from gnnmimo.testing.properties import (
    assert_batch_independent,
    assert_generalises_over_user_counts,
    assert_permutation_equivariant,
    assert_well_formed,
    permute_users,
)
from gnnmimo.testing.randomise import randomised_parameters

try:
    import hypothesis  # noqa: F401
except ImportError:  # the assertions work without Hypothesis
    _HYPOTHESIS_ERROR = ("gnnmimo.testing.{name} needs Hypothesis; install it with "
                         "`pip install gnnmimo[test]`")
else:
    _HYPOTHESIS_ERROR = None
    from gnnmimo.testing.profiles import PROFILES, register_profiles
    from gnnmimo.testing.strategies import channel_models, mimo_batches, mimo_configs

    register_profiles()

_NEEDS_HYPOTHESIS = ("channel_models", "mimo_batches", "mimo_configs", "PROFILES", "register_profiles")

__all__ = [
    "assert_batch_independent", "assert_generalises_over_user_counts",
    "assert_permutation_equivariant", "assert_well_formed", "permute_users", "randomised_parameters",
    *_NEEDS_HYPOTHESIS,
]


def __getattr__(name: str):
    if name in _NEEDS_HYPOTHESIS and _HYPOTHESIS_ERROR:
        raise ImportError(_HYPOTHESIS_ERROR.format(name=name))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
