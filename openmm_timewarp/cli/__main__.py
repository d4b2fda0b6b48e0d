"""``python -m openmm_timewarp.cli``: the same as the ``openmm-timewarp`` command."""
import sys

from . import main

sys.exit(main())
