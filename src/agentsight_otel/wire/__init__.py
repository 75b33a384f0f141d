"""The wire layer: click records and the bytes AgentSight reads. Pure functions, no I/O.

- :mod:`.records`: :class:`~.records.ClickRecord`, one click however it
  travelled, and :func:`~.records.record_from_event`, the one place a click
  event's attributes become a record (SDK spans and OTLP alike).
- :mod:`.spans`: finished SDK spans -> compact queue items -> records.
- :mod:`.ingest` and :mod:`.buttons`: the two request bodies.
- :mod:`.timestamps`: the ISO 8601 text every click carries.
- :mod:`.unflatten`: flattened metadata attributes -> the metadata object.

Recording imports from here (a forward edge); nothing here imports recording,
delivery or the servers.
"""
