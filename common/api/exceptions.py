"""The API's one exception handler: every error becomes ``{"code", "message", "details", "job_id"}``.

``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` points here. Pipeline errors, DRF's
own exceptions, Django's ``Http404``/``PermissionDenied`` and unexpected
exceptions all answer with the same JSON shape, so a client parses one thing.

Status codes for pipeline errors (the first matching rule wins):

* a code ending in ``NOT_FOUND`` (``NOT_FOUND``, ``JOB_NOT_FOUND``...) -> 404;
  ``ALREADY_EXISTS`` -> 409; ``FILE_TOO_LARGE`` -> 413;
* :class:`~common.errors.ValidationError` -> 400;
* :class:`~common.errors.BudgetExceededError` -> **402 Payment Required**: the
  request is well formed and the job is in a normal state; it is the money that
  ran out, and the remedy is to raise the budget (pay), which is exactly what
  402 says. 409 would tell the client that retrying after re-reading the
  resource could help, which it cannot;
* :class:`~common.errors.RetryableError` (and so
  :class:`~common.errors.ServiceUnavailableError`) and
  :class:`~common.errors.ResourceError` -> 503 with ``Retry-After`` (the
  error's ``retry_after``, else :data:`DEFAULT_RETRY_AFTER` seconds);
* :class:`~common.errors.ConfigError` -> 500 with a generic message; the
  problems are logged, never sent;
* a Django database error that means the database cannot serve now (no
  connection, a pool wait that timed out, too many connections, a query
  cancelled, SQLite locked) -> 503 ``SERVICE_UNAVAILABLE`` with
  ``Retry-After: 5`` (:data:`DATABASE_RETRY_AFTER`), as ``/health/ready`` says
  503 for it; any other database error is a bug and stays a 500;
* any other :class:`~common.errors.PipelineError` -> 500.

A 5xx body carries the user-friendly message of its code (from
:func:`~common.errors.get_user_friendly_message`) and no details except
``retry_after``: the original message may name hosts, buckets or settings, so
it goes to the log only. A 4xx body carries the error's own message and
details, which describe the client's request.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from common.errors import (
    BudgetExceededError,
    ConfigError,
    PipelineError,
    ResourceError,
    RetryableError,
    ServiceUnavailableError,
    ValidationError,
    get_user_friendly_message,
)
from common.log import get_logger

__all__ = [
    "DATABASE_RETRY_AFTER",
    "DEFAULT_RETRY_AFTER",
    "INTERNAL_ERROR_CODE",
    "database_unavailable",
    "error_body",
    "exception_handler",
    "json_not_found",
    "json_server_error",
    "pipeline_error_status",
]

logger = get_logger(__name__)

DEFAULT_RETRY_AFTER = 30
# A client polling a job retries this soon when the database is down (it usually comes back in seconds).
DATABASE_RETRY_AFTER = 5
# SQLSTATE classes of "cannot serve now" beside lost connections: 53 insufficient resources (too many
# connections), 57 operator intervention (query cancelled, server shutting down), 40 transaction rollback.
_UNAVAILABLE_SQLSTATE_CLASSES = ("53", "57", "40")
INTERNAL_ERROR_CODE = "INTERNAL_ERROR"
INTERNAL_ERROR_MESSAGE = "Something went wrong on our side. Please try again later."

# Pipeline error codes whose status does not follow from the class.
_STATUS_BY_CODE = {
    "ALREADY_EXISTS": status.HTTP_409_CONFLICT,
    "FILE_TOO_LARGE": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
}
# Pipeline error classes -> status, most specific first.
_STATUS_BY_CLASS: tuple[tuple[type[PipelineError], int], ...] = (
    (ValidationError, status.HTTP_400_BAD_REQUEST),
    (BudgetExceededError, status.HTTP_402_PAYMENT_REQUIRED),
    (RetryableError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ResourceError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (ConfigError, status.HTTP_500_INTERNAL_SERVER_ERROR),
)


def error_body(
    code: str, message: str, details: dict[str, Any] | None = None, job_id: object | None = None
) -> dict[str, Any]:
    """Return the one error body shape: ``code``, ``message``, ``details``, ``job_id``."""
    return {
        "code": code,
        "message": message,
        "details": details or {},
        "job_id": str(job_id) if job_id is not None else None,
    }


def pipeline_error_status(exc: PipelineError) -> int:
    """Return the HTTP status for a pipeline error (see the module docstring for the rules)."""
    if exc.code.endswith("NOT_FOUND"):
        return status.HTTP_404_NOT_FOUND
    if exc.code in _STATUS_BY_CODE:
        return _STATUS_BY_CODE[exc.code]
    for kind, code in _STATUS_BY_CLASS:
        if isinstance(exc, kind):
            return code
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def database_unavailable(exc: BaseException) -> ServiceUnavailableError | None:
    """The 503 error for a database error that means "cannot serve now", else ``None`` (a bug: 500)."""
    from common.db import is_connection_error

    if not isinstance(exc, (OperationalError, InterfaceError)):
        return None
    cause = exc.__cause__ or exc.__context__
    sqlstate = str(getattr(cause, "sqlstate", None) or "")
    if not (
        is_connection_error(exc)
        or sqlstate.startswith(_UNAVAILABLE_SQLSTATE_CLASSES)
        or "database is locked" in str(exc).lower()
    ):
        return None
    return ServiceUnavailableError(
        f"The database is unavailable: {type(exc).__name__}: {exc}",
        details={"service": "database"},
        retry_after=DATABASE_RETRY_AFTER,
    )


def _retry_after(exc: PipelineError) -> int:
    value = getattr(exc, "retry_after", None)
    if value is None:
        # common.db's errors name the database as the service: it comes back sooner than most.
        return DATABASE_RETRY_AFTER if exc.details.get("service") == "database" else DEFAULT_RETRY_AFTER
    return max(1, math.ceil(value))


def _pipeline_response(exc: PipelineError) -> Response:
    code = pipeline_error_status(exc)
    headers: dict[str, str] = {}
    if code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        details: dict[str, Any] = {}
        if code == status.HTTP_503_SERVICE_UNAVAILABLE:
            retry_after = _retry_after(exc)
            headers["Retry-After"] = str(retry_after)
            details["retry_after"] = retry_after
        if isinstance(exc, ConfigError):
            logger.error("configuration error answered as 500: %s", exc.message, extra={"details": exc.details})
            message = get_user_friendly_message(ConfigError.default_code)
        else:
            log = logger.warning if code == status.HTTP_503_SERVICE_UNAVAILABLE else logger.error
            log("%s answered as %d: %s", type(exc).__name__, code, exc.message, extra={"error_code": exc.code})
            message = get_user_friendly_message(exc.code, type(exc))
        body = error_body(exc.code, message, details, exc.job_id)
    else:
        body = exc.to_dict()
    return Response(body, status=code, headers=headers)


def _drf_code(exc: drf_exceptions.APIException) -> str:
    if isinstance(exc, drf_exceptions.ValidationError):
        # The same code as the pipeline's ValidationError; the fields are in details.
        return ValidationError.default_code
    detail = exc.detail
    code = getattr(detail, "code", None) if isinstance(detail, str) else None
    return str(code or exc.default_code).upper()


def _drf_response(exc: drf_exceptions.APIException) -> Response:
    headers: dict[str, str] = {}
    auth_header = getattr(exc, "auth_header", None)
    if auth_header:
        # RFC 6750 section 3: a refused token is error="invalid_token".
        from common.api.authentication import SERVER_SIDE_REFUSALS, TokenRefused

        if isinstance(exc, TokenRefused) and exc.get_codes() not in SERVER_SIDE_REFUSALS:
            auth_header = f'{auth_header}, error="invalid_token"'
        headers["WWW-Authenticate"] = auth_header
    wait = getattr(exc, "wait", None)
    details: dict[str, Any] = {}
    if wait:
        headers["Retry-After"] = str(math.ceil(wait))
        details["retry_after"] = math.ceil(wait)

    detail = exc.detail
    if isinstance(detail, dict):
        message = "The request is invalid."
        details["fields"] = detail
    elif isinstance(detail, list):
        message = str(detail[0]) if len(detail) == 1 else "The request is invalid."
        details["errors"] = detail
    else:
        message = str(detail)
    body = error_body(_drf_code(exc), message, details)
    return Response(body, status=exc.status_code, headers=headers)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler: the common JSON error body for every exception, never a traceback."""
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    unavailable = database_unavailable(exc)
    if unavailable is not None:
        response = _pipeline_response(unavailable)
    elif isinstance(exc, PipelineError):
        response = _pipeline_response(exc)
    elif isinstance(exc, drf_exceptions.APIException):
        response = _drf_response(exc)
    else:
        view = context.get("view")
        logger.exception("unhandled exception in API view %s", type(view).__name__ if view else "?")
        response = Response(
            error_body(INTERNAL_ERROR_CODE, INTERNAL_ERROR_MESSAGE), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    set_rollback()
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    """A plain Django view: the JSON 404 body (for ``/api/`` paths that match no route)."""
    return JsonResponse(
        error_body("NOT_FOUND", str(drf_exceptions.NotFound.default_detail)), status=status.HTTP_404_NOT_FOUND
    )


def json_server_error(request: HttpRequest) -> JsonResponse:
    """A plain Django view: the JSON 500 body (usable as ``handler500`` for API-only deployments)."""
    return JsonResponse(error_body(INTERNAL_ERROR_CODE, INTERNAL_ERROR_MESSAGE), status=500)
