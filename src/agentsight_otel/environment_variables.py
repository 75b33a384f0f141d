"""Every environment variable the exporter reads, once.

Registered under the ``opentelemetry_environment_variables`` entry point, so
``opentelemetry-instrument`` offers each ``OTEL_*`` name below as a flag
(``--exporter_agentsight_endpoint`` sets ``OTEL_EXPORTER_AGENTSIGHT_ENDPOINT``).
The three ``AGENTSIGHT_*`` names are the ones the AgentSight SDKs already
use; an ``OTEL_EXPORTER_AGENTSIGHT_*`` name, when set, wins over its
``AGENTSIGHT_*`` twin because it is the more specific setting.

Precedence for every setting: constructor argument, then
``OTEL_EXPORTER_AGENTSIGHT_*``, then ``AGENTSIGHT_*``, then the default.
"""

#: The API key (``ags_...``). Prefer the environment to a command-line flag:
#: flags are visible to every user of the machine in the process list.
AGENTSIGHT_API_KEY = "AGENTSIGHT_API_KEY"
#: Base URL, default ``https://api.agentsight.io``.
AGENTSIGHT_API_ENDPOINT = "AGENTSIGHT_API_ENDPOINT"
#: Environment slug (``production``, ``development`` or a custom one).
AGENTSIGHT_ENVIRONMENT = "AGENTSIGHT_ENVIRONMENT"

OTEL_EXPORTER_AGENTSIGHT_API_KEY = "OTEL_EXPORTER_AGENTSIGHT_API_KEY"
OTEL_EXPORTER_AGENTSIGHT_ENDPOINT = "OTEL_EXPORTER_AGENTSIGHT_ENDPOINT"
OTEL_EXPORTER_AGENTSIGHT_ENVIRONMENT = "OTEL_EXPORTER_AGENTSIGHT_ENVIRONMENT"
#: Wire format: ``ingest`` (batched, default) or ``buttons`` (one POST per click).
OTEL_EXPORTER_AGENTSIGHT_API = "OTEL_EXPORTER_AGENTSIGHT_API"
#: Path of the on-disk spool (SQLite). Unset: no spool, memory only.
OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH = "OTEL_EXPORTER_AGENTSIGHT_SPOOL_PATH"
#: Most clicks the spool keeps (default 1,000,000).
OTEL_EXPORTER_AGENTSIGHT_SPOOL_MAX_CLICKS = "OTEL_EXPORTER_AGENTSIGHT_SPOOL_MAX_CLICKS"
#: What a full spool or queue drops: ``newest`` (refuse new clicks, the
#: OpenTelemetry convention, default) or ``oldest``.
OTEL_EXPORTER_AGENTSIGHT_DROP_POLICY = "OTEL_EXPORTER_AGENTSIGHT_DROP_POLICY"
#: Seconds per HTTP request (default 10).
OTEL_EXPORTER_AGENTSIGHT_TIMEOUT = "OTEL_EXPORTER_AGENTSIGHT_TIMEOUT"
#: Seconds one batch is retried before it is dropped, or left in the spool
#: for later (default 60).
OTEL_EXPORTER_AGENTSIGHT_RETRY_DEADLINE = "OTEL_EXPORTER_AGENTSIGHT_RETRY_DEADLINE"
#: Most clicks held in memory waiting for delivery (default 262,144).
OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_SIZE = "OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_SIZE"
#: Most bytes (estimated) of clicks held in memory waiting for delivery
#: (default 67,108,864: 64 MiB); whichever of this and the click count is
#: reached first bounds the queue.
OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_BYTES = "OTEL_EXPORTER_AGENTSIGHT_MAX_QUEUE_BYTES"
#: Most clicks per ingest request (default 1,000).
OTEL_EXPORTER_AGENTSIGHT_MAX_BATCH_SIZE = "OTEL_EXPORTER_AGENTSIGHT_MAX_BATCH_SIZE"
#: Most ingest requests in flight at once without a spool (default 4): with
#: one, a 100 ms round trip caps delivery at ten batches a second.
OTEL_EXPORTER_AGENTSIGHT_MAX_CONCURRENT_REQUESTS = (
    "OTEL_EXPORTER_AGENTSIGHT_MAX_CONCURRENT_REQUESTS"
)
#: ``true`` allows sending the key over plain http:// to a non-loopback host.
OTEL_EXPORTER_AGENTSIGHT_INSECURE = "OTEL_EXPORTER_AGENTSIGHT_INSECURE"

# --- Read by the module-level ``track_button`` (recording, not the exporter) ---

#: How the module-level ``track_button`` records a click: ``span_event``
#: (default), ``log_event`` or ``both``. Read at its first click; a value
#: outside these makes every click raise ``InvalidSettingError`` naming it.
AGENTSIGHT_CLICK_SIGNAL = "AGENTSIGHT_CLICK_SIGNAL"
#: ``true`` makes the module-level ``track_button`` also count each click on
#: the ``agentsight.button.clicks`` counter (default ``false``). Read at its
#: first click, as ``AGENTSIGHT_CLICK_SIGNAL``.
AGENTSIGHT_CLICK_METRICS = "AGENTSIGHT_CLICK_METRICS"
