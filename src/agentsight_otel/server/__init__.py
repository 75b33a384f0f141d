"""Server-side pieces of agentsight-otel (install the ``[server]`` extra).

The main one is the local AgentSight-compatible receiver
(:mod:`agentsight_otel.server.receiver`): a development and test peer that
speaks the same HTTP contract as AgentSight (``/api/buttons/``,
``/api/ingest/``, ``/api/me/``), keeps what it receives in SQLite and shows it
on a small HTML page — the role Jaeger all-in-one plays for tracing. It is not
a production backend.

Modules, one concern each:

* :mod:`~agentsight_otel.server.limits` — request-body bounds (size before and
  after gzip, JSON nesting depth), shared with the OTLP bridge.
* :mod:`~agentsight_otel.server.store` — the SQLite click store.
* :mod:`~agentsight_otel.server.faults` — switchable fault injection.
* :mod:`~agentsight_otel.server.receiver` — the Starlette app, ``serve`` and a
  background-thread runner for tests and demos.

Nothing is imported here so that ``import agentsight_otel.server`` stays cheap
and does not need Starlette until a module that uses it is imported.
"""
