"""The HTTP face of a :class:`~tora.serve.service.PolicyService`, built with FastAPI.

Routes: ``POST /act`` (actions for observations under preferences), ``GET /objectives``
(what to send), ``POST /reload`` (re-read the run), ``GET /health``, and FastAPI's own
``/openapi.json`` and ``/docs``. Errors a client causes get a 4xx answer
``{"detail": message, "error": type}`` whose message is the Python API's: 400 for a body that
is not JSON, 401 without the bearer token, 409 for a failed reload, 413 for a body over the
size limit, 422 for inputs the agent refuses. The server keeps serving after any of them.

FastAPI is an optional dependency (the ``serve`` extra): only this module imports it, and
only ``tora serve`` and its tests import this module.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tora.errors import ToraError
from tora.serve.service import PolicyService, ReloadError
from tora.version import __version__


# Models for the OpenAPI schema. The /act body itself is parsed by tora.serve.payload, so
# that a bad request gets the Python API's message rather than a generic validation error.
class ActRequest(BaseModel):
    """Observations and the preference(s) to act under."""

    obs: list[float] | list[list[float]] = Field(
        description="One observation (obs_dim numbers) or a batch (B rows of obs_dim)."
    )
    weights: list[float] | list[list[float]] | dict[str, float] | list[dict[str, float]] = Field(
        description="One preference for every observation, or one per observation; each "
        "either K numbers in the order of GET /objectives or {name: weight} (objectives left "
        "out weigh 0). Finite, non-negative, summing to 1."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        description="Seed of this request's sampling noise: the same request with the same "
        "seed gets the same actions. Without it every answer is a fresh sample.",
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"obs": [0.1, 0.5, -0.2], "weights": [0.3, 0.7]},
                {"obs": [[0.1, 0.5, -0.2], [0.0, 0.2, 0.1]], "weights": {"speed": 1.0}},
            ]
        }
    }


class ActResponse(BaseModel):
    actions: list[float] | list[list[float]] = Field(
        description="One action (act_dim numbers) per observation, shaped as obs was."
    )


class ObjectivesResponse(BaseModel):
    objectives: list[str] = Field(description="Composed objective models, in weight order.")
    directions: list[str | None] = Field(description="maximize or minimize, per objective.")
    obs_dim: int
    act_dim: int
    candidates: int = Field(description="Plans sampled per row (1: no selection).")
    run: str


class ReloadResponse(ObjectivesResponse):
    previous_objectives: list[str]


class HealthResponse(BaseModel):
    status: str
    batching: bool
    agent_calls: int = Field(description="Agent calls so far (fewer than requests when batched).")
    reloads: int


class ErrorResponse(BaseModel):
    detail: str
    error: str = Field(description="The error's type, e.g. InvalidWeightsError.")


def _error(status: int, detail: str, error: str, headers: dict[str, str] | None = None) -> Any:
    return JSONResponse({"detail": detail, "error": error}, status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413: at once when Content-Length says so,
    else as soon as the bytes read pass the limit (a chunked body declares no length)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"the request body is over the server's limit of {self.max_bytes:,} bytes"
        await _error(413, detail, "BodyTooLarge")(scope, receive, send)


def _token_check(token: str) -> Any:
    """A dependency refusing requests without ``Authorization: Bearer <token>``. HTTPBearer
    puts the scheme in the OpenAPI schema, so /docs can send it."""
    bearer = HTTPBearer(auto_error=False, description="The server's --token.")

    async def check(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        given = credentials.credentials if credentials is not None else ""
        # compare_digest: the time taken must not tell how much of a guess was right.
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "missing or wrong bearer token: send the header 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise HTTPException(400, f"the request body is not valid JSON: {exc}") from exc


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "The body is not JSON.",
        401: "Missing or wrong bearer token.",
        413: "The body is over the size limit.",
        422: "Inputs the agent refuses (shapes, weights, objective names).",
    }.items()
}


def create_app(
    service: PolicyService, max_body_bytes: int = 1_000_000, token: str | None = None
) -> FastAPI:
    """A FastAPI app answering with ``service``; ``token``: the bearer token every route but
    /health and the docs requires (None: no token)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.close()

    app = FastAPI(
        title="tora-rl policy server",
        version=__version__,
        description="Actions of a TORA agent for observations under preferences chosen per "
        "request. Concurrent requests are micro-batched into one agent call.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    guarded = [Depends(_token_check(token))] if token is not None else []

    # Starlette's class: also the router's own 404 and 405.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        # The status's name as the error type: "Unauthorized", "BadRequest", "NotFound".
        name = HTTPStatus(exc.status_code).phrase.replace(" ", "")
        return _error(exc.status_code, str(exc.detail), name, exc.headers)

    @app.exception_handler(ToraError)
    async def refused(request: Request, exc: ToraError) -> Any:
        status = 409 if isinstance(exc, ReloadError) else 422
        return _error(status, str(exc), type(exc).__name__)

    @app.post(
        "/act",
        dependencies=guarded,
        response_model=ActResponse,
        responses=ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ActRequest.model_json_schema()}},
            }
        },
    )
    async def act(request: Request) -> Any:
        """Actions for observations under preferences (micro-batched with concurrent
        requests)."""
        actions = await service.act(await _json_body(request))
        # Returned as is: the array is already checked, and validating it again through
        # the response model would cost time on every request.
        return JSONResponse({"actions": actions.tolist()})

    @app.get("/objectives", dependencies=guarded, response_model=ObjectivesResponse)
    async def objectives() -> Any:
        """The composed objectives (the order of positional weights) and the agent's sizes."""
        return service.describe()

    @app.post(
        "/reload",
        dependencies=guarded,
        response_model=ReloadResponse,
        responses={409: {"model": ErrorResponse, "description": "Reload failed."}},
    )
    async def reload() -> Any:
        """Load the run directory again (e.g. after `tora finetune` added an objective
        model). On failure the agent loaded before keeps serving."""
        return await service.reload()

    @app.get("/health", response_model=HealthResponse)
    async def health() -> Any:
        """Liveness; needs no token."""
        return {
            "status": "ok",
            "batching": service.batching,
            "agent_calls": service.agent_calls,
            "reloads": service.reloads,
        }

    return app
