"""``Sender.deliver(records, deadline) -> DeliveryReport``: click records over HTTP.

The ingest API takes a batch per request and names the conversation blocks
it refuses, so the others are sent again without them; the buttons API
takes one click per request, sent ``BUTTONS_CONCURRENCY`` at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from agentsight_otel.config import BUTTONS_PATH, INGEST_PATH, ExporterSettings
from agentsight_otel.delivery.daemon_pool import DaemonPool
from agentsight_otel.delivery.http import Outcome, Result, Transport
from agentsight_otel.delivery.report import Accounting, DeliveryReport, LossReason
from agentsight_otel.ratelimit import RateLimitedLogger
from agentsight_otel.wire.buttons import encode_buttons
from agentsight_otel.wire.ingest import encode_ingest
from agentsight_otel.wire.records import ClickRecord

logger = logging.getLogger("agentsight_otel")

#: Concurrent requests for the one-click-per-request ``buttons`` API: one at
#: a time, a 50 ms round trip would cap delivery at 20 clicks a second.
BUTTONS_CONCURRENCY = 8
#: Auth failures keep spooled clicks (a fixed key delivers them) but pause.
AUTH_STATUSES = frozenset({401, 403})


class Sender:
    """Delivers click records with one ``Transport``; counts what it delivered or
    AgentSight refused."""

    def __init__(
        self,
        settings: ExporterSettings,
        transport: Transport,
        accounting: Accounting,
        warn: RateLimitedLogger,
        *,
        keeps_refused_auth: bool,
    ) -> None:
        self._settings = settings
        self.transport = transport
        self._accounting = accounting
        self._warn = warn
        #: With a spool, an auth failure keeps the clicks: a fixed key delivers them.
        self._keeps_refused_auth = keeps_refused_auth
        self._pool: DaemonPool | None = None  # buttons API only, made lazily

    def deliver(
        self, records: Sequence[ClickRecord], deadline: float, body: bytes | None = None
    ) -> DeliveryReport:
        """Send records until ``deadline`` (monotonic); ``body``: their ingest
        body, when already encoded."""
        report = DeliveryReport()
        if self._settings.api == "buttons":
            bodies = [encode_buttons(record) for record in records]

            def send(body: bytes) -> Result:
                return self.transport.post(BUTTONS_PATH, body, deadline, compressible=False)

            try:
                results = list(self._buttons_pool().map(send, bodies))
            except RuntimeError:
                # At interpreter exit (the SDK shuts down from atexit) no new
                # threads may start; the last clicks go one at a time instead.
                results = [send(body) for body in bodies]
            for index, result in enumerate(results):
                self._file(result, [index], report)
        else:
            self._deliver_ingest(records, list(range(len(records))), deadline, report, True, body)
        self._accounting.count_delivered(len(report.delivered))
        self._accounting.count_lost(LossReason.REJECTED, len(report.rejected))
        return report

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
        self.transport.close()

    def _buttons_pool(self) -> DaemonPool:
        if self._pool is None:
            self._pool = DaemonPool(BUTTONS_CONCURRENCY, "agentsight-buttons")
        return self._pool

    def _deliver_ingest(
        self,
        records: Sequence[ClickRecord],
        indexes: list[int],
        deadline: float,
        report: DeliveryReport,
        retry: bool,
        body: bytes | None = None,
    ) -> None:
        chosen = [records[i] for i in indexes]
        if body is None:
            body = encode_ingest(chosen, self.transport.environment(deadline))
        # Blocks appear in the order of each conversation's first click in time.
        in_time = sorted(chosen, key=lambda r: r.timestamp_ns)
        block_of = {
            cid: n for n, cid in enumerate(dict.fromkeys(r.conversation_id for r in in_time))
        }
        result = self.transport.post(INGEST_PATH, body, deadline, compressible=True)
        if result.outcome is Outcome.REJECTED and result.rejected_blocks and retry:
            # Ingest names the offending blocks; the others were fine and are
            # sent again without them, instead of being dropped with them.
            bad = set(result.rejected_blocks)
            rejected = [i for i, r in zip(indexes, chosen) if block_of[r.conversation_id] in bad]
            kept = [i for i, r in zip(indexes, chosen) if block_of[r.conversation_id] not in bad]
            self._file(result, rejected, report)
            if kept:
                self._deliver_ingest(records, kept, deadline, report, retry=False)
            return
        self._file(result, indexes, report)

    def _file(self, result: Result, indexes: list[int], report: DeliveryReport) -> None:
        report.status = result.status
        if result.outcome is Outcome.DELIVERED:
            report.delivered.extend(indexes)
            return
        report.detail = result.detail or f"HTTP {result.status}"
        auth = result.status in AUTH_STATUSES
        if auth:
            keyless = self._settings.api_key is None
            self._warn.error(
                "auth",
                "AgentSight %s (HTTP %s)%s; %s AGENTSIGHT_API_KEY",
                "asks for an API key and none is set" if keyless else "refused the API key",
                result.status,
                "; spooled clicks are kept until it is fixed" if self._keeps_refused_auth else "",
                "set" if keyless else "check",
            )
        if result.outcome is Outcome.REJECTED and not (auth and self._keeps_refused_auth):
            report.rejected.extend(indexes)
            self._warn.warning(
                f"rejected-{result.status}",
                "AgentSight rejected %d click(s) with HTTP %s; not retrying: %s",
                len(indexes),
                result.status,
                result.detail,
            )
        else:
            report.failed.extend(indexes)
