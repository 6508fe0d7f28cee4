"""``python -m deepshop_export`` runs the ``deepshop-export`` command."""
import sys

from .cli import main

sys.exit(main())
