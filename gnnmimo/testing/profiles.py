"""Hypothesis settings profiles for detector tests.

* ``"ci"``: few examples (detectors are costly to run), no deadline (the
  first call of a detector may compile or warm up caches), derandomized so a
  CI run is reproducible, no example database, and no ``too_slow`` health
  check (building a batch and running a detector is legitimately slow).
* ``"dev"``: many more examples with random exploration, for a thorough
  local run.

Select one with ``hypothesis.settings.load_profile("ci")`` or, in a pytest
``conftest.py``::

    import os
    from hypothesis import settings
    import gnnmimo.testing  # registers the profiles
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

PROFILES = {
    "ci": dict(max_examples=8, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               print_blob=True),
    "dev": dict(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow], print_blob=True),
}


def register_profiles() -> None:
    """Register the ``"ci"`` and ``"dev"`` profiles with Hypothesis (idempotent)."""
    for name, options in PROFILES.items():
        settings.register_profile(name, **options)
