import sys

from calc.cli import main

try:
    sys.exit(main())
except BrokenPipeError:  # the reader's pager or `head` stopped reading: not an error of calc's
    sys.exit(0)
