"""Command line: ``python -m skmm {fit,predict,evaluate,demo}``; see skmm._cli."""

import sys

from skmm._cli import main

if __name__ == "__main__":
    sys.exit(main())
