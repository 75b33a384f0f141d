"""The conversation routes ``agentsight`` 0.0.44 uses, so its documented flow works.

0.0.44's flow (``initialize_conversation`` or ``get_or_create_conversation``,
then ``track_button``, then ``send_tracked_data``) starts with ``POST
/api/conversations/``; without it the receiver answered 405 and the client
raised in user code. Routes (write side authenticated as the others are,
read side open as the others are):

* ``POST /api/conversations/`` — get or create; 201 when created, 200 when
  it existed, either way the conversation with its numeric ``id``.
* ``GET /api/conversations/?conversation_id=<id>`` — ``{"count", "results"}``
  as 0.0.44's ``fetch_conversation("<id>")`` reads it (answered by the
  receiver's list route, which calls :func:`by_conversation_id`).
* ``GET /api/conversations/<int id>/`` and ``GET
  /api/conversations/lookup/?conversation_id=<id>``.
* ``POST /api/track/`` (messages) and ``POST /api/action_logs/`` (actions):
  stored, 201 with their ``id``. Buttons keep their own route.
* Everything else 0.0.44 can call — attachments, feedback, renaming,
  marking, updating, deleting — answers **501** naming what is not
  implemented, so the client reports that instead of a puzzling 404/405.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Callable, Final, Union

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentsight_otel.server import conversation_records as records
from agentsight_otel.server.counts import parse_counted
from agentsight_otel.server.limits import BodyError
from agentsight_otel.server.store import Store
from agentsight_otel.server.validation import ValidationFailed

#: Authenticates a write request and reads its JSON body: the raw bytes, or
#: the refusal to answer with (the receiver's own checks).
Admit = Callable[[Request], Awaitable[Union[bytes, Response]]]
#: Authenticates a request that has no body to read.
Authorize = Callable[[Request], Union[Response, None]]

#: What each not-implemented route would do, for its 501.
NOT_IMPLEMENTED: Final = {
    "attachments": "attachments",
    "feedback": "conversation feedback",
    "rename": "renaming conversations",
    "mark": "marking conversations",
    "update": "updating conversations",
    "delete": "deleting conversations",
    "list-attachments": "listing attachments",
}


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def by_conversation_id(store: Store, conversation_id: str) -> Response:
    """``GET /api/conversations/?conversation_id=``, paginated as 0.0.44 reads it."""
    found = await run_in_threadpool(records.find, store, conversation_id=conversation_id)
    results = [found] if found is not None else []
    return JSONResponse({"count": len(results), "next": None, "previous": None, "results": results})


class _Api:
    def __init__(self, store: Store, admit: Admit, authorize: Authorize) -> None:
        self.store = store
        self.admit = admit
        self.authorize = authorize

    async def _body(self, request: Request, read: Callable[[Any], Any]) -> Any:
        """The validated body, or the Response refusing it."""
        raw = await self.admit(request)
        if isinstance(raw, Response):
            return raw
        try:
            return await run_in_threadpool(lambda: read(parse_counted(raw)))
        except BodyError as exc:
            return _error(exc.status_code, str(exc))
        except ValidationFailed as exc:
            return JSONResponse(exc.body, status_code=400)

    async def create(self, request: Request) -> Response:
        row = await self._body(request, records.conversation_row)
        if isinstance(row, Response):
            return row
        pk, created = await run_in_threadpool(records.get_or_create, self.store, row)
        found = await run_in_threadpool(records.find, self.store, pk=pk)
        return JSONResponse(found, status_code=201 if created else 200)

    async def detail(self, request: Request) -> Response:
        pk: int = request.path_params["pk"]
        found = await run_in_threadpool(records.find, self.store, pk=pk)
        if found is None:
            return _error(404, "No conversation with this id.")
        return JSONResponse(found)

    async def lookup(self, request: Request) -> Response:
        conversation_id = request.query_params.get("conversation_id")
        if not conversation_id:
            return _error(400, "query parameter conversation_id is required")
        found = await run_in_threadpool(records.find, self.store, conversation_id=conversation_id)
        if found is None:
            return _error(404, "No conversation with this conversation_id.")
        return JSONResponse({"id": found["id"], "conversation_id": found["conversation_id"]})

    async def message(self, request: Request) -> Response:
        row = await self._body(request, records.message_row)
        if isinstance(row, Response):
            return row
        mid = await run_in_threadpool(records.add_message, self.store, row)
        conversation_id, sender, content, _, timestamp = row
        answer: dict[str, Any] = {
            "id": mid,
            "conversation_id": conversation_id,
            "sender": sender,
            "content": content,
            "timestamp": timestamp,
        }
        return JSONResponse(answer, status_code=201)

    async def action(self, request: Request) -> Response:
        row = await self._body(request, records.action_row)
        if isinstance(row, Response):
            return row
        aid = await run_in_threadpool(records.add_action, self.store, row)
        conversation_id, action_name, _, timestamp = row
        answer = {
            "id": aid,
            "conversation_id": conversation_id,
            "action_name": action_name,
            "timestamp": timestamp,
        }
        return JSONResponse(answer, status_code=201)

    def not_implemented(self, what: str) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            refused = self.authorize(request)
            if refused is not None:
                return refused
            return _error(
                501,
                f"Not implemented by the agentsight-otel local receiver: {NOT_IMPLEMENTED[what]}."
                " It stores conversations, messages, actions and button clicks.",
            )

        return answer


def routes(store: Store, admit: Admit, authorize: Authorize) -> list[Route]:
    """The routes above; ``admit``/``authorize`` are the receiver's own checks."""
    records.install(store)
    api = _Api(store, admit, authorize)
    todo = api.not_implemented
    pk = "/api/conversations/{pk:int}"
    return [
        Route("/api/conversations/", api.create, methods=["POST"]),
        Route("/api/conversations/lookup/", api.lookup, methods=["GET"]),
        Route(f"{pk}/", api.detail, methods=["GET"]),
        Route("/api/track/", api.message, methods=["POST"]),
        Route("/api/action_logs/", api.action, methods=["POST"]),
        Route("/api/attachments/", todo("attachments"), methods=["POST"]),
        Route("/api/conversation-feedbacks/", todo("feedback"), methods=["POST"]),
        Route(f"{pk}/rename/", todo("rename"), methods=["PATCH"]),
        Route(f"{pk}/mark/", todo("mark"), methods=["POST"]),
        Route(f"{pk}/update/", todo("update"), methods=["PATCH"]),
        Route(f"{pk}/delete/", todo("delete"), methods=["DELETE"]),
        Route(f"{pk}/attachments/", todo("list-attachments"), methods=["GET"]),
    ]
