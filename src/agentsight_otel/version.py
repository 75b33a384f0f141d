"""The package's one version number.

pyproject.toml reads it from here (``[tool.setuptools.dynamic]``), so the
wheel's metadata, ``agentsight_otel.__version__``, the CLI's ``--version``
and the SDK version sent with every ingest body cannot disagree.
"""

__version__ = "0.1.0"
