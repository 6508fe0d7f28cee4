"""``python -m deepshop_export.train``: kept for the command lines that use it; the trainers are
in deepshop_export.training (the dispatcher: training/cli.py)."""
import sys

from .training.cli import main

if __name__ == "__main__":
    sys.exit(main())
