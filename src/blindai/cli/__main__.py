"""``python -m blindai.cli``: the ``blindai`` command."""

from __future__ import annotations

import sys

from blindai.cli import main

if __name__ == "__main__":
    sys.exit(main())
