"""Server-side pieces of agentsight-otel (install the ``[server]`` extra).

The main one is the local AgentSight-compatible receiver
(:mod:`agentsight_otel.server.receiver`): a development and test peer that
speaks the same HTTP contract as AgentSight (``/api/buttons/``,
``/api/ingest/``, ``/api/me/``), keeps what it receives in SQLite and shows it
on a small HTML page — the role Jaeger all-in-one plays for tracing. It is not
a production backend.

Modules, one concern each:

* :mod:`~agentsight_otel.server.receiver` — the receiver's Starlette app,
  ``serve`` and a background-thread runner for tests and demos; its routes
  are :mod:`~agentsight_otel.server.write_routes` (auth, buttons, ingest,
  faults) and :mod:`~agentsight_otel.server.read_routes` (page, read API).
* :mod:`~agentsight_otel.server.ingest` — the ingest body's msgspec schema
  and value rules; :mod:`~agentsight_otel.server.validation` the buttons
  body; :mod:`~agentsight_otel.server.rules` the field rules both share.
* :mod:`~agentsight_otel.server.limits` and
  :mod:`~agentsight_otel.server.counts` — request-body bounds (size before
  and after gzip, JSON nesting depth, element counts), shared with the bridge.
* :mod:`~agentsight_otel.server.store` — the SQLite click store, holding
  :mod:`~agentsight_otel.server.click_rows` values.
* :mod:`~agentsight_otel.server.insights` — the numbers of ``/insights/``
  (clicks per label, over time, journeys), counted in SQL;
  :mod:`~agentsight_otel.server.insights_page` draws them as inline SVG.
* :mod:`~agentsight_otel.server.paths` — the data directory both servers use.
* :mod:`~agentsight_otel.server.faults` — switchable fault injection.
* :mod:`~agentsight_otel.server.bridge` — OTLP in, AgentSight out
  (:mod:`~agentsight_otel.server.otlp` decodes).

Nothing is imported here so that ``import agentsight_otel.server`` stays cheap
and does not need Starlette until a module that uses it is imported.
"""
