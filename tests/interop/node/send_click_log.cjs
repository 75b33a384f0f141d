// One click recorded as a log-based event by the official OpenTelemetry JS
// SDK and exported by its stock OTLP/protobuf log exporter, as a Node.js
// service would send it to the bridge's /v1/logs: a log record with
// eventName "agentsight.button_click", the current span's ids, and only the
// four attributes a hand-written click carries (no click id).
//
//   node send_click_log.cjs <bridge /v1/logs URL> <token> <trace id hex32>
//        <span id hex16> <event time, unix ns> <label>
//
// The ids and both timestamps come from the command line so that two runs
// send the same record: a resend, as an exporter's retry after a lost
// response would be. Exits 0 only when the exporter reports success.
"use strict";

const { ROOT_CONTEXT, TraceFlags, trace } = require("@opentelemetry/api");
const { ExportResultCode } = require("@opentelemetry/core");
const { OTLPLogExporter } = require("@opentelemetry/exporter-logs-otlp-proto");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const {
  InMemoryLogRecordExporter,
  LoggerProvider,
  SimpleLogRecordProcessor,
} = require("@opentelemetry/sdk-logs");

function hrTime(unixNanos) {
  const nanos = BigInt(unixNanos);
  const second = 1000000000n;
  return [Number(nanos / second), Number(nanos % second)];
}

function main(argv) {
  if (argv.length !== 6) {
    process.stderr.write("usage: send_click_log.cjs URL TOKEN TRACE_ID SPAN_ID UNIX_NANOS LABEL\n");
    process.exit(2);
  }
  const [url, token, traceId, spanId, unixNanos, label] = argv;
  const at = hrTime(unixNanos);
  const memory = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ "service.name": "node-interop-logs" }),
    processors: [new SimpleLogRecordProcessor(memory)],
  });
  // The agent's span, as the current context would hold it in a service.
  const context = trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: TraceFlags.SAMPLED,
  });
  provider.getLogger("interop").emit({
    eventName: "agentsight.button_click",
    timestamp: at,
    observedTimestamp: at,
    context,
    attributes: {
      "agentsight.button_event": "contact_human_agent",
      "agentsight.button_label": label,
      "agentsight.button_value": "create-ticket",
      "agentsight.conversation_id": "node-conversation",
    },
  });

  const exporter = new OTLPLogExporter({
    url,
    headers: { Authorization: `Bearer ${token}` },
  });
  // Exporting the finished records directly surfaces the exporter's own
  // verdict, which is what a service's telemetry would trust.
  exporter.export(memory.getFinishedLogRecords(), (result) => {
    const ok = result.code === ExportResultCode.SUCCESS;
    if (!ok) {
      process.stderr.write(`export failed: ${result.error}\n`);
    }
    exporter.shutdown().finally(() => process.exit(ok ? 0 : 1));
  });
}

main(process.argv.slice(2));
