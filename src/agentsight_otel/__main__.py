"""``python -m agentsight_otel``: the ``agentsight-otel`` command, for when the
console script is not on ``PATH`` (a venv that is not activated, ``pipx run``)."""

import sys

from agentsight_otel.cli import main

if __name__ == "__main__":
    sys.exit(main())
