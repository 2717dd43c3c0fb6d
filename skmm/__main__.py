"""Command line: ``python -m skmm demo [--data-home PATH]``."""

import sys

from skmm._demo import main

if __name__ == "__main__":
    sys.exit(main())
