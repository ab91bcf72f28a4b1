"""``python -m tplib``: same as the ``tplib`` command."""
import sys

from .cli import main

sys.exit(main())
