"""The delivery layer: click records in, requests to AgentSight out.

- :mod:`.queue`: the bounded memory queue (clicks and bytes), its drop
  policy and the rule for when an offer wakes the worker.
- :mod:`.worker`: the one background worker that drains it, with its flush
  and shutdown bookkeeping.
- :mod:`.memory` and :mod:`.spooled`: the two ways the worker delivers (from
  memory, retried until a deadline; or through the SQLite spool,
  :mod:`.spool`, which outlives outages and crashes).
- :mod:`.sender`: ``deliver(records, deadline) -> DeliveryReport`` over
  :mod:`.http`, the HTTP client with retries.
- :mod:`.report`: typed accounting (:class:`~.report.LossReason`,
  :class:`~.report.DeliveryReport`).

Delivery takes queue items from any source of clicks together with the
function that turns a batch of them into click records, so a second source
(OpenTelemetry log records) needs no change here.
"""
