"""``python -m gnnmimo COMMAND …`` runs the command line (:mod:`gnnmimo.cli`)."""
import sys

from gnnmimo.cli import main

sys.exit(main())
