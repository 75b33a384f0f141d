"""A tiny chat web app whose buttons are tracked through OpenTelemetry.

    agentsight-otel serve --api-key dev-key      # terminal 1: the local receiver
    python examples/chat_app/app.py              # terminal 2: this app, on :8000

Open http://127.0.0.1:8000/, click a button under the agent's message, then
see the click on the receiver's page, http://127.0.0.1:8400/ (README.md
beside this file has the details).

The page posts each click to ``POST /api/click``. That request already has a
server span, made by the Starlette OpenTelemetry instrumentation, and
``track_button`` records the click as an event on it: the click lands in the
request's trace, and the ``ClickSpanProcessor`` added by ``configure()``
delivers it to AgentSight (here, the local receiver).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import uuid
from collections.abc import Sequence
from typing import Any, Optional

import uvicorn
from opentelemetry import trace
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import agentsight_otel
from agentsight_otel import InvalidButtonError, MissingConversationIdError, Tracker

# (button_event, [(label, value, metadata), ...]): buttons shown together share
# one button_event; only the one the user clicks is tracked.
Buttons = tuple[str, list[tuple[str, str, Optional[dict[str, Any]]]]]

CONTACT: Buttons = (
    "contact_human_agent",
    [("Copy conversation", "copy-conversation", None), ("Create ticket", "create-ticket", None)],
)
PRODUCTS: Buttons = (
    "product_selection",
    [
        (
            "Add Wireless Headphones",
            "product_123",
            {"product_name": "Wireless Headphones", "price": 99.99, "category": "electronics"},
        ),
        (
            "Add Charging Case",
            "product_456",
            {"product_name": "Charging Case", "price": 29.99, "category": "electronics"},
        ),
    ],
)

TRANSCRIPT: list[tuple[str, str, Buttons | None]] = [
    ("user", "My invoice is wrong and I would like to talk to a person.", None),
    ("agent", "Sorry about that! I can hand this over to our support team:", CONTACT),
    ("user", "While I am here: do you have headphones?", None),
    ("agent", "These are popular right now:", PRODUCTS),
]

# Plain DOM calls and textContent only: nothing the server sends back is
# ever parsed as HTML.
SCRIPT = """
const conversationId = document.body.dataset.conversation;
for (const button of document.querySelectorAll("button[data-event]")) {
  button.addEventListener("click", async () => {
    const line = document.createElement("li");
    try {
      const response = await fetch("/api/click", {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({
          conversation_id: conversationId,
          button_event: button.dataset.event,
          label: button.textContent.trim(),
          value: button.dataset.value,
          metadata: JSON.parse(button.dataset.metadata || "null"),
        }),
      });
      const answer = await response.json();
      line.textContent = response.ok
        ? `Recorded click ${answer.click_id} in trace ${answer.trace_id} (span ${answer.span_id})`
        : `Not recorded: ${answer.detail}`;
    } catch (error) {
      line.textContent = `Not recorded: ${error}`;
    }
    document.getElementById("log").append(line);
  });
}
"""

STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
.msg { padding: .5rem .8rem; border-radius: .6rem; margin: .5rem 0; }
.user { background: #e8f0fe; margin-left: 6rem; }
.agent { background: #f1f3f4; margin-right: 6rem; }
button { margin: .4rem .4rem 0 0; }
#log { font: 12px monospace; color: #555; }
"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _buttons_html(buttons: Buttons) -> str:
    button_event, choices = buttons
    return "".join(
        f'<button type="button" data-event="{_e(button_event)}" data-value="{_e(value)}"'
        f' data-metadata="{_e(json.dumps(metadata))}">{_e(label)}</button>'
        for label, value, metadata in choices
    )


def render_page(conversation_id: str) -> str:
    messages = "".join(
        f'<div class="msg {role}">{_e(text)}<div>{_buttons_html(buttons) if buttons else ""}'
        "</div></div>"
        for role, text, buttons in TRANSCRIPT
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Chat {_e(conversation_id)}</title><style>{STYLE}</style></head>"
        f'<body data-conversation="{_e(conversation_id)}">'
        f"<h1>Support chat</h1><p>Conversation <code>{_e(conversation_id)}</code></p>"
        f'{messages}<ol id="log"></ol><script>{SCRIPT}</script></body></html>'
    )


def create_app(tracer_provider: trace.TracerProvider | None = None) -> Starlette:
    """The chat app, its requests traced with ``tracer_provider`` (default: the global one)."""
    # The tracker only needs the provider for a click that cannot go on the
    # request span (e.g. sampled out): it then gets a short span of its own.
    tracker = Tracker(tracer_provider=tracer_provider)

    async def chat_page(request: Request) -> Response:
        conversation_id = request.query_params.get("conversation", "").strip()
        return HTMLResponse(render_page(conversation_id or f"chat-{uuid.uuid4().hex[:12]}"))

    async def record_click(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "the body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"detail": "the body must be a JSON object"}, status_code=400)
        try:
            # Runs inside the server span of this request, so the click lands on it.
            click = tracker.track_button(
                body.get("button_event"),
                body.get("label"),
                body.get("value"),
                conversation_id=body.get("conversation_id"),
                metadata=body.get("metadata"),
            )
        except (InvalidButtonError, MissingConversationIdError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        return JSONResponse({key: click[key] for key in ("click_id", "trace_id", "span_id")})

    app = Starlette(
        routes=[
            Route("/", chat_page, methods=["GET"]),
            Route("/api/click", record_click, methods=["POST"]),
        ]
    )
    StarletteInstrumentor.instrument_app(app, tracer_provider=tracer_provider)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A chat page whose button clicks are tracked.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)

    provider = TracerProvider(resource=Resource.create({"service.name": "chat-app"}))
    trace.set_tracer_provider(provider)
    # Your usual exporters go here too; this adds the one that delivers clicks.
    agentsight_otel.configure(
        tracer_provider=provider,
        api_key=os.environ.get("AGENTSIGHT_API_KEY", "dev-key"),
        endpoint=os.environ.get("AGENTSIGHT_API_ENDPOINT", "http://127.0.0.1:8400"),
    )
    print(f"chat app on http://{args.host}:{args.port}/", flush=True)
    try:
        uvicorn.run(create_app(provider), host=args.host, port=args.port)
    finally:
        provider.shutdown()  # delivers the clicks still queued (bounded in time)


if __name__ == "__main__":
    main()
