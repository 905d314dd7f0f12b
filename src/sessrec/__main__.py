"""``python -m sessrec``: the command line, also as torchrun starts it (``torchrun ... -m sessrec run ...``)."""

import sys

from sessrec.cli import main

sys.exit(main())
