"""The OpenAPI 3.1 description of the service, served at /openapi.json and checked in as
docs/openapi.json (tests/unit/test_serve_openapi.py keeps the two equal and every route
documented). Regenerate the file with `python -m rater.serve.openapi > docs/openapi.json`.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rater.serve.problems import Code

_STRING: dict[str, Any] = {"type": "string"}
_MONEY: dict[str, Any] = {
    "type": "string",
    "pattern": r"^-?[0-9]+\.[0-9]{2,6}$",
    "description": "An exact decimal amount in the account's currency (never a float).",
}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {
        400: "A bad request: the field at fault and why.",
        401: "No token, or a malformed, unknown or revoked one.",
        403: "The token's switch may not act here (switch, reseller or address).",
        404: "No such account or path.",
        408: "The body did not arrive in time.",
        413: "The body is over the size cap.",
        503: "Redis did not answer.",
    }
    return {str(s): _json(_ref("Error"), words[s]) for s in statuses}


_AUTH_ID_PARAM: dict[str, Any] = {
    "name": "auth_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[!-9;-z|~]{1,64}$"},
}
_SECURED: list[dict[str, list[str]]] = [{"bearer": []}, {"basic": []}]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "rater HTTP service for switches",
        "version": "1",
        "description": (
            "Call authorization, reservations and balance look-ups for switches and IVRs. "
            "A refusal is a 200 with allowed (or ok) false and a reason; 4xx answers are "
            "bad requests and authentication only."
        ),
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "rater switch token"},
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "user = the switch's name, password = its token",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "field", "message"],
                        "properties": {
                            "code": {"type": "string", "enum": [c.value for c in Code]},
                            "field": {
                                "type": "string",
                                "description": "the field or header at fault, '' when none",
                            },
                            "message": _STRING,
                        },
                    }
                },
            },
            "AuthorizeRequest": {
                "type": "object",
                "description": (
                    "Exactly one payer: account, card (with pin, or the X-Card-PIN header) or "
                    "ani. Other fields are ignored."
                ),
                "required": ["callee"],
                "properties": {
                    "switch": {
                        "type": "string",
                        "description": "defaults to the token's switch; another one is 403",
                    },
                    "account": {"type": "string", "pattern": r"^[A-Za-z0-9_.@+\-]{1,64}$"},
                    "card": {"type": "string", "pattern": "^[0-9]{4,32}$"},
                    "pin": {"type": "string", "maxLength": 32},
                    "ani": {
                        "type": "string",
                        "maxLength": 32,
                        "description": "the caller number, for PIN-less card calls",
                    },
                    "caller": {"type": "string", "maxLength": 64},
                    "callee": {"type": "string", "maxLength": 64},
                    "max_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
                },
            },
            "Authorization": {
                "type": "object",
                "required": [
                    "allowed",
                    "reason",
                    "message",
                    "max_seconds",
                    "auth_id",
                    "expires_at",
                ],
                "properties": {
                    "allowed": {"type": "boolean"},
                    "reason": {
                        "type": "string",
                        "description": "ok, or why not (card_or_pin, card_empty, ...)",
                    },
                    "message": _STRING,
                    "max_seconds": {
                        "type": "integer",
                        "description": "hang up after this many seconds",
                    },
                    "auth_id": {
                        **_nullable(_STRING),
                        "description": "put it on the call's CDR; null when refused",
                    },
                    "expires_at": _nullable(_TIME),
                },
            },
            "Release": {
                "type": "object",
                "required": ["auth_id", "released"],
                "properties": {"auth_id": _STRING, "released": {"const": True}},
            },
            "CardBalance": {
                "type": "object",
                "required": ["ok", "reason", "message", "card"],
                "properties": {
                    "ok": {"type": "boolean"},
                    "reason": _STRING,
                    "message": _STRING,
                    "card": _STRING,
                    "status": _STRING,
                    "currency": _STRING,
                    "balance": _MONEY,
                    "available": _MONEY,
                    "expires_at": _nullable(_TIME),
                },
            },
            "Account": {
                "type": "object",
                "required": [
                    "account",
                    "name",
                    "reseller",
                    "currency",
                    "status",
                    "balance",
                    "available",
                    "held",
                    "reservations",
                ],
                "properties": {
                    "account": _STRING,
                    "name": _STRING,
                    "reseller": _STRING,
                    "currency": _STRING,
                    "status": _STRING,
                    "balance": _MONEY,
                    "available": _MONEY,
                    "held": _MONEY,
                    "reservations": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["auth_id", "amount", "expires_at"],
                            "properties": {
                                "auth_id": _STRING,
                                "amount": _MONEY,
                                "expires_at": _TIME,
                            },
                        },
                    },
                },
            },
            "Status": {"type": "object", "additionalProperties": _STRING},
            "CdrAccepted": {
                "type": "object",
                "required": ["accepted", "switch", "cdr_id", "other_leg"],
                "properties": {
                    "accepted": {"type": "boolean"},
                    "switch": _STRING,
                    "cdr_id": _STRING,
                    "other_leg": {"type": "boolean"},
                },
            },
        },
    },
    "paths": {
        "/v1/authorize": {
            "post": {
                "summary": "May this call start, and for how many seconds?",
                "security": _SECURED,
                "parameters": [
                    {"name": "X-Card-PIN", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("AuthorizeRequest")},
                        "application/x-www-form-urlencoded": {"schema": _ref("AuthorizeRequest")},
                    },
                },
                "responses": {
                    "200": _json(_ref("Authorization"), "Allowed, or refused with a reason."),
                    **_errors(400, 401, 403, 408, 413, 503),
                },
            }
        },
        "/v1/authorize/{auth_id}/renew": {
            "post": {
                "summary": "More time for a long call, or the reason why not.",
                "security": _SECURED,
                "parameters": [_AUTH_ID_PARAM],
                "responses": {
                    "200": _json(
                        _ref("Authorization"),
                        "Renewed (max_seconds: the call's total), or refused with a reason.",
                    ),
                    **_errors(400, 401, 403, 408, 413, 503),
                },
            }
        },
        "/v1/authorize/{auth_id}/release": {
            "post": {
                "summary": "Drop a reservation (call not set up). Idempotent.",
                "security": _SECURED,
                "parameters": [_AUTH_ID_PARAM],
                "responses": {
                    "200": _json(_ref("Release"), "Released (also the second time)."),
                    **_errors(400, 401, 403, 408, 413, 503),
                },
            }
        },
        "/v1/cards/{number}/balance": {
            "get": {
                "summary": "A card's balance for an IVR, after its PIN.",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "number",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9]{4,32}$"},
                    },
                    {
                        "name": "X-Card-PIN",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "maxLength": 32},
                    },
                ],
                "responses": {
                    "200": _json(_ref("CardBalance"), "The balance, or why not (ok false)."),
                    **_errors(400, 401, 403, 503),
                },
            }
        },
        "/v1/accounts/{account_id}": {
            "get": {
                "summary": "Booked balance, available balance and live reservations.",
                "security": _SECURED,
                "parameters": [
                    {
                        "name": "account_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": r"^[A-Za-z0-9_.@+\-]{1,64}$"},
                    }
                ],
                "responses": {
                    "200": _json(_ref("Account"), "The account."),
                    **_errors(400, 401, 403, 404, 503),
                },
            }
        },
        "/v1/cdrs/{switch}": {
            "post": {
                "summary": "One CDR of this switch (mod_json_cdr: JSON or cdr=...).",
                "security": _SECURED,
                "parameters": [
                    {"name": "switch", "in": "path", "required": True, "schema": _STRING}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    },
                },
                "responses": {
                    "200": _json(_ref("CdrAccepted"), "The broker acknowledged the record."),
                    **_errors(400, 401, 403, 408, 413, 503),
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "The process answers.",
                "responses": {"200": _json(_ref("Status"), "Alive.")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Redis and Kafka answer.",
                "responses": {
                    "200": _json(_ref("Status"), "Ready."),
                    "503": _json(_ref("Status"), "Not ready: what failed."),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics of every worker process.",
                "description": (
                    "Needs a token of any switch, unless the client address is in "
                    "RATER_HTTP_METRICS_ALLOW."
                ),
                "security": _SECURED,
                "responses": {
                    "200": {"description": "Text format", "content": {"text/plain": {}}},
                    **_errors(401, 403),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        },
    },
}


def text() -> str:
    """The document as docs/openapi.json holds it."""
    return json.dumps(DOCUMENT, indent=2, sort_keys=True) + "\n"


async def serve(request: Request) -> Response:
    return Response(text(), media_type="application/json")


if __name__ == "__main__":
    print(text(), end="")
