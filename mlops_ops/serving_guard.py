"""What the prediction API checks before a request reaches a route, and what its refusals may say.

- :class:`RequestGuard` (ASGI middleware) answers **401** without the bearer token when one is configured, and
  **413** for a body over the limit: a declared ``Content-Length`` is refused before a byte is read, a chunked
  body as soon as it has grown past the limit. Nothing is parsed before both checks pass.
- :func:`validation_error_body` is the **422** answer: each error's location (names cut short) and a short
  message, never the submitted values. FastAPI's own answer quotes each value back (``input``), so a client
  gets its 10 kB string, or a secret it pasted by mistake, echoed into its logs and ours.
- :func:`bounded_model` puts the model spec's ``bounds`` on a request model, so value ranges are written once,
  in the spec, and show in the OpenAPI schema.
- :func:`signature_request_model` builds the request model from a model's signature when a project gives none:
  one field per input column, of the column's type, required as the signature says, strings bounded in length,
  with the spec's ``bounds``.
- :func:`shown_error` is what ``/health`` and ``/ready`` may say about a failure: credentials masked, and only
  the error's kind to a caller without the token when one is configured.
"""

from __future__ import annotations

import hmac
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, Field, create_model
from starlette.responses import JSONResponse

from mlops_ops.core.redaction import scrub_secrets

if TYPE_CHECKING:
    from mlops_ops.core.model_artifacts import ModelInput

#: Environment variable holding the bearer token (when no token file is given).
TOKEN_ENV = "MLOPS_SERVING_TOKEN"  # nosec B105 - the variable's name, not a token
#: A shorter token is refused: it could be guessed.
MIN_TOKEN_CHARACTERS = 16
#: The default request body limit: a request of one row with a few dozen fields is ~200 bytes to a few KiB.
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: Longest name (e.g. an unknown field) a 422 quotes; a longer one is not quoted.
MAX_NAME_CHARACTERS = 40
# A name a 422 may quote: what a field name looks like. Anything else a client sent as a key (a pasted token,
# a 10 kB string) is described by its length only.
_QUOTABLE_NAME = re.compile(rf"[A-Za-z_][A-Za-z0-9_.\-]{{0,{MAX_NAME_CHARACTERS - 1}}}")
#: Longest message of one 422 error.
MAX_MESSAGE_CHARACTERS = 200
#: Most errors a 422 lists; ``more_errors`` counts the rest.
MAX_ERRORS = 20
#: Longest error text ``/health`` and ``/ready`` show.
MAX_SHOWN_ERROR_CHARACTERS = 500
#: Longest text a request field built from a model's signature accepts (a category, an identifier).
MAX_TEXT_CHARACTERS = 256
#: The request field of each MLflow column type a JSON request can carry: its Python type and, for integers, the
#: range the column's type holds.
SIGNATURE_FIELD_TYPES: dict[str, tuple[type, tuple[int, int] | None]] = {
    "string": (str, None),
    "double": (float, None),
    "float": (float, None),
    "long": (int, (-(2**63), 2**63 - 1)),
    "integer": (int, (-(2**31), 2**31 - 1)),
    "boolean": (bool, None),
}

Model = TypeVar("Model", bound=BaseModel)


def check_token(token: str) -> str:
    """``token``, or :class:`ValueError` (without the token in it) when it is too short to be a secret."""
    if len(token) < MIN_TOKEN_CHARACTERS:
        raise ValueError(
            f"the serving token has {len(token)} characters, fewer than {MIN_TOKEN_CHARACTERS}; generate one "
            "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def read_token(token_file: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The bearer token the API requires: the content of ``token_file`` (surrounding whitespace stripped),
    else ``$MLOPS_SERVING_TOKEN``, else ``None`` (no authentication; an empty variable counts as unset).

    A file keeps the token out of the process list and shell history, where a command-line value would be.

    :raises ValueError: naming the file when it cannot be read or is empty, or when the token is too short.
    """
    environ = os.environ if environ is None else environ
    if token_file:
        try:
            token = Path(token_file).read_text().strip()
        except OSError as err:
            raise ValueError(f"cannot read the token file {token_file}: {err.strerror or err}") from err
        if not token:
            raise ValueError(f"the token file {token_file} is empty")
        return check_token(token)
    token = (environ.get(TOKEN_ENV) or "").strip()
    return check_token(token) if token else None


def token_matches(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <token>`` (the scheme in any case).

    Compared in constant time, so response times do not tell how much of a guess was right.
    """
    scheme, _, credential = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(credential.strip().encode(), token.encode())


class RequestGuard:
    """ASGI middleware: the bearer token (when configured) and the body limit, before the application runs.

    :param app: the application it guards.
    :param max_body_bytes: the largest body accepted; a larger one is answered 413.
    :param token: the bearer token every path except ``open_paths`` requires, or ``None`` for none.
    :param open_paths: paths served without the token (health checks, the API's documentation).
    """

    def __init__(
        self, app: Any, *, max_body_bytes: int, token: str | None, open_paths: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.token = token
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in reversed(scope.get("headers") or [])}
        if self.token is not None and scope["path"] not in self.open_paths:
            authorization = headers.get(b"authorization")
            if not token_matches(authorization.decode("latin-1") if authorization else None, self.token):
                challenge = 'Bearer realm="mlops-ops"'
                if authorization:
                    challenge += ', error="invalid_token"'
                await _answer(
                    scope,
                    receive,
                    send,
                    401,
                    "missing or invalid bearer token",
                    headers={"WWW-Authenticate": challenge},
                )
                return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _answer(scope, receive, send, 400, "invalid Content-Length header")
                return
            if length > self.max_body_bytes:
                await _answer(scope, receive, send, 413, self._too_large())
                return
        # Read the whole body here, counting (a chunked body declares no length), and hand it on in one
        # message: the application never sees a byte past the limit. Held in memory: at most the limit.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _answer(scope, receive, send, 413, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: http.disconnect when the client leaves

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes} bytes"


async def _answer(
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> None:
    await JSONResponse({"detail": detail}, status_code=status, headers=headers)(scope, receive, send)


def validation_error_body(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The 422 answer for pydantic/FastAPI validation errors: where and what, never the submitted values.

    Each error keeps ``loc`` (a name that does not look like a field name, e.g. longer than
    :data:`MAX_NAME_CHARACTERS`, becomes ``"<name of N characters>"``), ``type`` and
    ``msg`` (cut at :data:`MAX_MESSAGE_CHARACTERS`, and replaced when it quotes the submitted text); ``input``,
    ``ctx`` and ``url`` are dropped. At most :data:`MAX_ERRORS` are listed; ``more_errors`` counts the rest.

    :param errors: ``RequestValidationError.errors()``.
    :return: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}, ...]}`` (and ``"more_errors": n``).
    """
    listed = [
        {
            "loc": [_short_name(part) for part in error.get("loc", ())],
            "msg": _short_message(error),
            "type": str(error.get("type", "value_error"))[:MAX_NAME_CHARACTERS],
        }
        for error in errors[:MAX_ERRORS]
    ]
    body: dict[str, Any] = {"detail": listed}
    if len(errors) > MAX_ERRORS:
        body["more_errors"] = len(errors) - MAX_ERRORS
    return body


def _short_name(part: Any) -> str | int:
    if isinstance(part, int) and not isinstance(part, bool):
        return part
    name = str(part)
    return name if _QUOTABLE_NAME.fullmatch(name) else f"<name of {len(name)} characters>"


def _short_message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    submitted = error.get("input")
    # Pydantic's own messages describe the rule, not the value; a custom validator's message may quote it.
    if isinstance(submitted, str) and len(submitted) >= 4 and submitted in message:
        message = f"invalid value ({error.get('type', 'value_error')})"
    if len(message) > MAX_MESSAGE_CHARACTERS:
        message = message[: MAX_MESSAGE_CHARACTERS - 3] + "..."
    return message


async def validation_error_handler(request: Any, exc: Any) -> JSONResponse:
    """FastAPI exception handler of ``RequestValidationError``: :func:`validation_error_body`, status 422."""
    return JSONResponse(validation_error_body(exc.errors()), status_code=422)


def bounded_model(model: type[Model], bounds: Mapping[str, tuple[float | None, float | None]]) -> type[Model]:
    """A subclass of ``model`` whose numeric fields named in ``bounds`` accept only ``[min, max]``.

    Bounds on names that are not fields of ``model`` (features computed later, raw columns a request does not
    send) are left out; ``model`` itself is returned when no bound applies.

    :param model: the request model (its fields keep their types, defaults and descriptions).
    :param bounds: ``{field: (min, max)}``, inclusive, ``None`` for no limit on that side (a model spec's
        ``bounds``).
    :raises ValueError: when a bound names a field that is not a number.
    """
    fields: dict[str, Any] = {}
    for name, (low, high) in bounds.items():
        info = model.model_fields.get(name)
        if info is None:
            continue
        if not _is_number(info.annotation):
            raise ValueError(f"bounds.{name}: the request field {name!r} is not a number")
        fields[name] = (
            info.annotation,
            Field(default=info.default, description=info.description, ge=low, le=high),
        )
    if not fields:
        return model
    return create_model(
        model.__name__, __base__=model, __module__=model.__module__, __doc__=model.__doc__, **fields
    )


def signature_request_model(
    inputs: Sequence[ModelInput],
    bounds: Mapping[str, tuple[float | None, float | None]],
    *,
    base: type[Model],
    name: str,
) -> type[Model]:
    """A subclass of ``base`` with one field per input column of a model's signature.

    Each field is named as its column (a JSON key may be any text: the field is an alias of it), has the
    column's type (:data:`SIGNATURE_FIELD_TYPES`; strict: ``"3"`` is no number and ``1`` no boolean, and an
    integer column refuses ``3.5`` and ``3.0`` alike), is required unless the signature marks the column
    optional (then it may be absent or ``null``), holds at most :data:`MAX_TEXT_CHARACTERS` characters when it
    is text, and accepts only ``[min, max]`` when ``bounds`` names it. ``base``'s configuration applies (the
    request base refuses unknown fields, NaN and ±Infinity).

    :param inputs: the signature's input columns, in order.
    :param bounds: ``{column: (min, max)}``, inclusive, ``None`` for no limit on that side (a model spec's
        ``bounds``); a column the signature lacks is left out, as in :func:`bounded_model`.
    :param base: the request model the fields are added to.
    :param name: the model's name in the OpenAPI schema.
    :raises ValueError: naming the column, when its type is none of :data:`SIGNATURE_FIELD_TYPES` (a date, bytes,
        a tensor) or a bound names a column that is not a number.
    """
    fields: dict[str, Any] = {}
    for position, column in enumerate(inputs):
        if column.type not in SIGNATURE_FIELD_TYPES:
            raise ValueError(
                f"the signature's column {str(column.name)[:MAX_NAME_CHARACTERS]!r} is of type {column.type!r}, "
                f"which a request field is not built for (only {', '.join(SIGNATURE_FIELD_TYPES)}); give a "
                "request schema"
            )
        annotation, representable = SIGNATURE_FIELD_TYPES[column.type]
        low, high = bounds.get(column.name, (None, None))
        if column.name in bounds and annotation not in (int, float):
            raise ValueError(f"bounds.{column.name}: the request field {column.name!r} is not a number")
        if representable is not None:
            low = representable[0] if low is None else max(low, representable[0])
            high = representable[1] if high is None else min(high, representable[1])
        field = Field(
            ... if column.required else None,
            alias=column.name,
            title=column.name,
            strict=True,
            ge=low,
            le=high,
            max_length=MAX_TEXT_CHARACTERS if annotation is str else None,
        )
        # Named by position: a column may be called anything, "model_config" or "a b" included.
        fields[f"column_{position}"] = (annotation if column.required else annotation | None, field)
    return create_model(name, __base__=base, __module__=base.__module__, __doc__=base.__doc__, **fields)


def _is_number(annotation: Any) -> bool:
    """Whether a field's type is ``int``, ``float`` or an optional/union of them."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [member for member in typing.get_args(annotation) if member is not type(None)]
        return bool(members) and all(_is_number(member) for member in members)
    return annotation in (int, float)


def shown_error(error: str | None, *, detailed: bool) -> str | None:
    """What ``/health`` and ``/ready`` say about a failure ``"Kind: message"``: the message with credentials
    masked and cut at :data:`MAX_SHOWN_ERROR_CHARACTERS` when ``detailed``, else only its kind.

    :param detailed: whether the caller may see the message (no token configured, or the caller presented it).
    """
    if not error:
        return None
    error = scrub_secrets(error)  # before cutting: a cut URL would no longer be recognised as one
    if not detailed:
        return error.partition(":")[0].strip()[:MAX_NAME_CHARACTERS]
    if len(error) > MAX_SHOWN_ERROR_CHARACTERS:
        error = error[: MAX_SHOWN_ERROR_CHARACTERS - 3] + "..."
    return error
