"""The receiver's write side: authentication, body admission, fault injection,
``POST /api/buttons/``, ``POST /api/ingest/``, ``GET /api/me/`` and
``/_control/faults``.

A bad or missing key gets **403 on ingest** (as the real backend answers
there) and **401 elsewhere** (with ``WWW-Authenticate: Api-Key``). Without a
configured key, any well-formed key is accepted, and so is a request without
the header. Keys are compared in constant time and never echoed.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Final, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from agentsight_otel.server import conflicts, counts, limits
from agentsight_otel.server.faults import (
    FaultDecision,
    FaultPlan,
    FaultSpecError,
    format_retry_after,
    parse_rules,
)
from agentsight_otel.server.store import SOURCE_BUTTONS, SOURCE_INGEST, Store
from agentsight_otel.server.validation import (
    ENVIRONMENTS,
    ValidationFailed,
    buttons_click,
    read_ingest,
)

# The receiver's logger, so one logging setting (and its tests) covers the whole server.
logger = logging.getLogger("agentsight_otel.server.receiver")
T = TypeVar("T")

RECEIVER_NAME: Final = "agentsight-otel local receiver"
CAPABILITIES: Final = ("gzip-ingest",)

_AUTH_SCHEME: Final = "api-key"
_STATUS_TEXT: Final = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The ``{"detail": ...}`` answer every refusal uses."""
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class WriteRoutes:
    """The write endpoints, closed over one store, key and fault plan."""

    def __init__(self, store: Store, api_key: str | None, faults: FaultPlan) -> None:
        self.store = store
        # Bytes, because compare_digest refuses non-ASCII str.
        self._key = api_key.encode("utf-8") if api_key else None
        self.faults = faults
        # One thread does the CPU-heavy work (decode, validate, insert) off the
        # event loop. It is GIL-bound, so more threads could not make it
        # faster, only interleave requests that the store serialises anyway.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receiver-work")

    def close(self) -> None:
        """Let the worker thread go (it would otherwise idle until exit)."""
        self._worker.shutdown(wait=False)

    async def _work(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)

    # -- auth ------------------------------------------------------------

    def _auth_problem(self, request: Request) -> str | None:
        """Why the request is not authenticated, or ``None`` if it is."""
        header = request.headers.get("authorization")
        if not header:
            # Without --api-key, an exporter with no key (allowed for a
            # loopback endpoint) sends none; a wrong scheme is still refused.
            return None if self._key is None else "Authentication credentials were not provided."
        scheme, _, presented = header.strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() != _AUTH_SCHEME or not presented:
            return "Invalid authorization header; expected 'Api-Key <key>'."
        if self._key is None:
            return None
        if not hmac.compare_digest(presented.encode("utf-8"), self._key):
            return "Invalid API key."
        return None

    def unauthorized(self, request: Request) -> Response | None:
        problem = self._auth_problem(request)
        if problem is None:
            return None
        return error_response(401, problem, {"WWW-Authenticate": "Api-Key"})

    # -- body ------------------------------------------------------------

    @staticmethod
    def _media_type_problem(request: Request) -> Response | None:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            shown = media_type or "(none)"
            return error_response(415, f"Unsupported media type {shown}; send application/json.")
        return None

    async def admit_json(self, request: Request) -> bytes | Response:
        """A write request's raw JSON body once authenticated (401), or the refusal."""
        refused = self.unauthorized(request) or self._media_type_problem(request)
        if refused:
            return refused
        return await self._read(request)

    async def _read(self, request: Request) -> bytes | Response:
        try:
            return await limits.read_body(request, limits.MAX_BODY_BYTES)
        except limits.BodyError as exc:
            return error_response(exc.status_code, str(exc))
        except ClientDisconnect:
            # Nobody is listening; the status only shows in the access log.
            return Response(status_code=400)

    async def _apply_faults(self, decision: FaultDecision) -> Response | None:
        """Stall if asked; the injected error if it must answer before processing."""
        if decision.stall_seconds:
            await asyncio.sleep(decision.stall_seconds)
        if decision.status is not None and not decision.after_store:
            return self._fault_response(decision)
        return None

    @staticmethod
    def _fault_response(decision: FaultDecision) -> Response:
        assert decision.status is not None
        if decision.status == 429:
            wait = format_retry_after(decision.retry_after or 0.0)
            return error_response(
                429,
                f"Request was throttled. Expected available in {wait} seconds.",
                {"Retry-After": wait},
            )
        text = _STATUS_TEXT.get(decision.status, "Error")
        return error_response(decision.status, f"{text} (injected by the receiver's fault plan).")

    # -- write endpoints -------------------------------------------------

    async def buttons(self, request: Request) -> Response:
        refused = self.unauthorized(request) or self._media_type_problem(request)
        if refused:
            return refused
        if request.headers.get("content-encoding", "identity").strip().lower() != "identity":
            # Only ingest advertises gzip (the gzip-ingest capability).
            return error_response(415, "Content-Encoding is only accepted on /api/ingest/.")
        raw = await self._read(request)
        if isinstance(raw, Response):
            return raw
        decision = self.faults.decide()
        early = await self._apply_faults(decision)
        if early:
            return early
        try:
            answer = await self._work(self._buttons_sync, raw)
        except limits.BodyError as exc:
            return error_response(exc.status_code, str(exc))
        except ValidationFailed as exc:
            return JSONResponse(exc.body, status_code=400)
        if decision.status is not None:
            return self._fault_response(decision)
        return JSONResponse(answer, status_code=201)

    def _buttons_sync(self, raw: bytes) -> dict[str, Any]:
        body = counts.parse_counted(raw)
        row = buttons_click(body)
        result = self.store.insert_clicks([row], SOURCE_BUTTONS)
        conflicts.warn(logger, "POST /api/buttons/", result.conflicting)
        return {
            "click_id": row.click_id,
            "conversation_id": row.conversation_id,
            "button_event": row.button_event,
            "label": row.label,
            "value": row.value,
            "timestamp": row.timestamp,
            "duplicate": result.duplicates > 0,
            **conflicts.report(len(result.conflicting), result.conflicting),
        }

    async def ingest(self, request: Request) -> Response:
        problem = self._auth_problem(request)
        if problem is not None:
            return error_response(403, problem)
        refused = self._media_type_problem(request)
        if refused:
            return refused
        raw = await self._read(request)
        if isinstance(raw, Response):
            return raw
        decision = self.faults.decide()
        early = await self._apply_faults(decision)
        if early:
            return early
        encoding = request.headers.get("content-encoding")
        try:
            answer = await self._work(self._ingest_sync, raw, encoding)
        except limits.BodyError as exc:
            return error_response(exc.status_code, str(exc))
        except ValidationFailed as exc:
            return JSONResponse(exc.body, status_code=400)
        if decision.status is not None:
            return self._fault_response(decision)
        return JSONResponse(answer, status_code=200)

    def _ingest_sync(self, raw: bytes, encoding: str | None) -> dict[str, Any]:
        data = limits.decompress(raw, encoding, limits.MAX_DECOMPRESSED_BYTES)
        batch = read_ingest(data)
        result = self.store.insert_clicks(batch.clicks, SOURCE_INGEST)
        conflicts.warn(logger, "POST /api/ingest/", result.conflicting)
        return {
            "accepted": batch.spans,
            "clicks_stored": result.stored,
            "duplicates": result.duplicates,
            **conflicts.report(len(result.conflicting), result.conflicting),
        }

    async def me(self, request: Request) -> Response:
        refused = self.unauthorized(request)
        if refused:
            return refused
        return JSONResponse(
            {
                "agent_id": 1,
                "agent_name": RECEIVER_NAME,
                "name": RECEIVER_NAME,
                "role": "write",
                "capabilities": list(CAPABILITIES),
                "environments": [
                    {
                        "id": index + 1,
                        "slug": slug,
                        "name": slug.capitalize(),
                        "is_production": slug == "production",
                    }
                    for index, slug in enumerate(ENVIRONMENTS)
                ],
                "limits": {
                    "max_body_bytes": limits.MAX_BODY_BYTES,
                    "max_decompressed_bytes": limits.MAX_DECOMPRESSED_BYTES,
                    "max_json_depth": limits.MAX_JSON_DEPTH,
                },
            }
        )

    # -- fault control (dev-only) ---------------------------------------

    async def control_faults(self, request: Request) -> Response:
        refused = self.unauthorized(request)
        if refused:
            return refused
        if request.method == "DELETE":
            self.faults.clear()
        elif request.method == "PUT":
            refused = self._media_type_problem(request)
            if refused:
                return refused
            raw = await self._read(request)
            if isinstance(raw, Response):
                return raw
            try:
                self.faults.set_rules(parse_rules(counts.parse_counted(raw)))
            except (limits.BodyError, FaultSpecError) as exc:
                status = exc.status_code if isinstance(exc, limits.BodyError) else 400
                return error_response(status, str(exc))
        return JSONResponse({"rules": self.faults.snapshot()})
