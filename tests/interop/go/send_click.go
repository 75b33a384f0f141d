// One click, recorded and exported by the official OpenTelemetry Go SDK with
// its stock OTLP/gRPC trace exporter: a span event "agentsight.button_click"
// with the four attributes a hand-written click carries (no click id).
//
//	send_click <bridge gRPC host:port> <token> <label>
//
// Prints the trace and span ids; exits 0 only when the export succeeded.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: send_click HOST:PORT TOKEN LABEL")
		os.Exit(2)
	}
	endpoint, token, label := os.Args[1], os.Args[2], os.Args[3]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exporter, err := otlptracegrpc.New(ctx,
		otlptracegrpc.WithEndpoint(endpoint),
		otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithHeaders(map[string]string{"authorization": "Bearer " + token}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "exporter:", err)
		os.Exit(1)
	}
	provider := sdktrace.NewTracerProvider()
	_, span := provider.Tracer("interop").Start(ctx, "POST /chat")
	span.AddEvent("agentsight.button_click", trace.WithAttributes(
		attribute.String("agentsight.button_event", "contact_human_agent"),
		attribute.String("agentsight.button_label", label),
		attribute.String("agentsight.button_value", "create-ticket"),
		attribute.String("agentsight.conversation_id", "go-conversation"),
	))
	span.End()
	stub, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		fmt.Fprintln(os.Stderr, "not an SDK span")
		os.Exit(1)
	}
	// Exported directly, so the exporter's own verdict is the exit status.
	if err := exporter.ExportSpans(ctx, []sdktrace.ReadOnlySpan{stub}); err != nil {
		fmt.Fprintln(os.Stderr, "export:", err)
		os.Exit(1)
	}
	_ = exporter.Shutdown(ctx)
	fmt.Println(stub.SpanContext().TraceID().String(), stub.SpanContext().SpanID().String())
}
