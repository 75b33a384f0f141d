// One click, recorded and exported by the official OpenTelemetry JS SDK, as a
// Node.js service would send it: a span event "agentsight.button_click" with
// only the four attributes a hand-written click carries (no click id).
//
//   node send_click.cjs <bridge /v1/traces URL> <token> <trace id hex32>
//        <span id hex16> <event time, unix ns> <label>
//
// The ids and the time come from the command line so that two runs send the
// same span: a resend, as an exporter's retry after a lost response would be.
// Exits 0 only when the exporter reports the export as a success.
"use strict";

const { ExportResultCode } = require("@opentelemetry/core");
const { OTLPTraceExporter } = require("@opentelemetry/exporter-trace-otlp-proto");
const { resourceFromAttributes } = require("@opentelemetry/resources");
const { BasicTracerProvider } = require("@opentelemetry/sdk-trace-base");

function hrTime(unixNanos) {
  const nanos = BigInt(unixNanos);
  const second = 1000000000n;
  return [Number(nanos / second), Number(nanos % second)];
}

function main(argv) {
  if (argv.length !== 6) {
    process.stderr.write("usage: send_click.cjs URL TOKEN TRACE_ID SPAN_ID UNIX_NANOS LABEL\n");
    process.exit(2);
  }
  const [url, token, traceId, spanId, unixNanos, label] = argv;
  const at = hrTime(unixNanos);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": "node-interop" }),
    // The SDK's own hook for ids: fixed here, so a second run is a resend.
    idGenerator: {
      generateTraceId: () => traceId,
      generateSpanId: () => spanId,
    },
  });
  const span = provider.getTracer("interop").startSpan("POST /chat", { startTime: at });
  span.addEvent(
    "agentsight.button_click",
    {
      "agentsight.button_event": "contact_human_agent",
      "agentsight.button_label": label,
      "agentsight.button_value": "create-ticket",
      "agentsight.conversation_id": "node-conversation",
    },
    at,
  );
  span.end(at);

  const exporter = new OTLPTraceExporter({
    url,
    headers: { Authorization: `Bearer ${token}` },
  });
  // The finished span is a ReadableSpan; exporting it directly surfaces the
  // exporter's own verdict, which is what a service's telemetry would trust.
  exporter.export([span], (result) => {
    const ok = result.code === ExportResultCode.SUCCESS;
    if (!ok) {
      process.stderr.write(`export failed: ${result.error}\n`);
    }
    exporter.shutdown().finally(() => process.exit(ok ? 0 : 1));
  });
}

main(process.argv.slice(2));
