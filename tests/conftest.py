"""Test configuration: Hypothesis profile ``ci`` by default.

Override with ``HYPOTHESIS_PROFILE=dev pytest`` for a thorough run (the
profiles are defined in :mod:`gnnmimo.testing.profiles`).
"""
import os

from hypothesis import settings

import gnnmimo.testing  # noqa: F401  (registers the profiles)

settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
