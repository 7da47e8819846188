"""The OpenAPI 3.1 document of the daemon's HTTP API (`/api/v1/openapi.json`).

Written out rather than generated, so the schemas say what a client may rely
on (which fields can be null, which strings are enumerations); the contract
tests (tests/test_api_contract.py) check every response the daemon gives
against it, and that every mutating route demands a supervisor.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from deskline import __version__ as _version_of_package
from deskline.escalations import ACTIONS, MAX_TICKET

VERSION = "1"


def _nullable(t: str | list[str]) -> dict[str, Any]:
    types = [t] if isinstance(t, str) else list(t)
    return {"type": [*types, "null"]}


NUM_OR_NULL = _nullable("number")
TICKET_PATTERN = f"^[ -~]{{0,{MAX_TICKET}}}$"  # escalations.py's rule for a ticket
INT_OR_NULL = _nullable("integer")
STR_OR_NULL = _nullable("string")


def _obj(
    props: dict[str, Any], required: list[str] | None = None, extra: bool = True
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }
    if not extra:
        out["additionalProperties"] = False
    return out


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _arr(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


BAND = {"type": "string", "enum": ["green", "amber", "red", "unknown"]}
LED = {
    "oneOf": [
        {"type": "null"},
        _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "colour": {"type": "string"}}),
    ]
}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(
        {"ok": {"const": False}, "code": {"type": "string"}, "error": {"type": "string"}}
    ),
    "Floor": _obj(
        {
            "name": {"type": "string"},
            "errors": _arr({"type": "string"}),
            "rows": {"type": "integer", "minimum": 0},
            "cols": {"type": "integer", "minimum": 0},
            "accounts": _arr(
                _obj(
                    {
                        "key": {"type": "string"},
                        "name": {"type": "string"},
                        "target_pct": {"type": "integer"},
                        "threshold_s": {"type": "integer"},
                        "variant": {"type": "string"},
                    }
                )
            ),
        }
    ),
    "Desk": _obj(
        {
            "desk": {"type": "string"},
            "console": {"type": "string"},
            "account": {"type": "string"},
            "account_name": {"type": "string"},
            "agent": STR_OR_NULL,
            "agent_name": STR_OR_NULL,
            "row": {"type": "integer", "minimum": 0},
            "col": {"type": "integer", "minimum": 0},
            "on_floor": {"type": "boolean"},
            "online": {"type": "boolean"},
            "link": {
                "type": "string",
                "enum": ["online", "connecting", "offline", "released", "absent"],
            },
            "since": NUM_OR_NULL,
            "state": {"enum": ["ready", "on_call", "wrap_up", None]},
            "leds": {
                "oneOf": [
                    {"type": "null"},
                    _obj({"floor": LED, "personal": LED, "escalation": LED}),
                ]
            },
            "top": INT_OR_NULL,
            "display": _arr({"type": "string"}),
            "acw_left_s": INT_OR_NULL,
            "escalation": {
                "oneOf": [
                    {"type": "null"},
                    _obj({"id": {"type": "integer"}, "status": STR_OR_NULL, "left_s": INT_OR_NULL}),
                ]
            },
            "band": BAND,
        }
    ),
    "ServiceRow": _obj(
        {
            "scope": {"type": "string", "enum": ["account", "queue"]},
            "key": {"type": "string"},
            "name": {"type": "string"},
            "account": {"type": "string"},
            "band": BAND,
            "target_pct": {"type": "integer"},
            "threshold_s": {"type": "number"},
            "variant": {"type": "string"},
            "sl_interval": NUM_OR_NULL,
            "sl_today": NUM_OR_NULL,
            "offered_interval": {"type": "integer"},
            "offered_today": {"type": "integer"},
            "answered_today": {"type": "integer"},
            "abandoned_today": {"type": "integer"},
            "asa_interval_s": NUM_OR_NULL,
            "asa_today_s": NUM_OR_NULL,
            "abandon_rate_interval_pct": NUM_OR_NULL,
            "abandon_rate_today_pct": NUM_OR_NULL,
            "waiting": {"type": "integer"},
            "longest_waiting_s": NUM_OR_NULL,
        }
    ),
    "Service": _obj(
        {
            "acd": {"type": "boolean"},
            "interval_min": {"type": "integer"},
            "interval_start": NUM_OR_NULL,
            "accounts": _arr(_ref("ServiceRow")),
            "queues": _arr(_ref("ServiceRow")),
        }
    ),
    "OpenEscalation": _obj(
        {
            "ext_id": {"type": "string"},
            "kind": {"type": "string", "enum": ["client", "floor_help"]},
            "severity": {"type": "string"},
            "status": {"type": "string"},
            "desk": {"type": "string"},
            "agent": {"type": "string"},
            "account": {"type": "string"},
            "account_name": {"type": "string"},
            "queue": {"type": "string"},
            "ticket": {"type": "string"},
            "raised": NUM_OR_NULL,
            "age_s": {"type": "integer"},
            "ack_due": NUM_OR_NULL,
            "resolve_due": NUM_OR_NULL,
            "acked": NUM_OR_NULL,
            "deadline": NUM_OR_NULL,
            "left_s": INT_OR_NULL,
            "breached": _arr({"type": "string"}),
            "urgency": {
                "type": "string",
                "enum": ["breached", "due_soon", "running", "no_deadline"],
            },
        }
    ),
    "Escalation": _obj(
        {
            "ext_id": {"type": "string"},
            "kind": {"type": "string"},
            "severity": INT_OR_NULL,
            "status": {"type": "string"},
            "ticket": STR_OR_NULL,
            "raised": NUM_OR_NULL,
            "desk": STR_OR_NULL,
            "account": STR_OR_NULL,
            "ack_due": NUM_OR_NULL,
            "resolve_due": NUM_OR_NULL,
            "breached": _arr({"type": "string"}),
            "deadline": NUM_OR_NULL,
            "left_s": INT_OR_NULL,
        }
    ),
    "Demand": _obj(
        {
            "account": {"type": "string"},
            "account_name": {"type": "string"},
            "contacts": {"type": "integer"},
            "failure_demand": {"type": "integer"},
            "failure_demand_pct": NUM_OR_NULL,
            "codes": _arr(
                _obj(
                    {
                        "code": {"type": "integer"},
                        "label": {"type": "string"},
                        "contacts": {"type": "integer"},
                        "share_pct": NUM_OR_NULL,
                        "cumulative_pct": NUM_OR_NULL,
                        "failure_demand": {"type": "boolean"},
                    }
                )
            ),
        }
    ),
    "Health": _obj(
        {
            "device_id": {"type": "string"},
            "desk": {"type": "string"},
            "online": {"type": "boolean"},
            "last_heartbeat": NUM_OR_NULL,
            "heartbeat_age_s": NUM_OR_NULL,
            "fw_version": {"type": "string"},
            "app_version": {"type": "string"},
            "app_slot": {"type": "integer"},
            "free_heap": INT_OR_NULL,
            "min_free_heap": INT_OR_NULL,
            "boots": INT_OR_NULL,
            "last_reset_cause": INT_OR_NULL,
            "reset_cause_name": STR_OR_NULL,
            "journal_depth": INT_OR_NULL,
            "link_errors": {"type": "integer"},
            "rx_errors": {"type": "integer"},
            "reconnects": {"type": "integer"},
            "config_version": INT_OR_NULL,
            "config_expected": INT_OR_NULL,
        }
    ),
    "DaemonFigures": _obj(
        {
            "started": {"type": "number"},
            "uptime_s": {"type": "number"},
            "events_per_s": {"type": "number"},
            "committed_events": {"type": "integer"},
            "store_failures": {"type": "integer"},
            "ports": {"type": "integer"},
            "online": {"type": "integer"},
            "link_errors": {"type": "integer"},
        }
    ),
    "Snapshot": _obj(
        {
            "ok": {"const": True},
            "version": {"type": "integer"},
            "generated": {"type": "number"},
            "floor": _ref("Floor"),
            "desks": _arr(_ref("Desk")),
            "service": _ref("Service"),
            "escalations": _arr(_ref("OpenEscalation")),
            "demand": _arr(_ref("Demand")),
            "health": _arr(_ref("Health")),
            "daemon": _ref("DaemonFigures"),
        }
    ),
    "Answered": _obj(
        {"ok": {"const": True}, "ext_id": {"type": "string"}, "changed": {"type": "boolean"}},
    ),
    "CommandResult": _obj(
        {
            "ok": {"type": "boolean"},
            "device": STR_OR_NULL,
            "port": {"type": "string"},
            "text": {"type": "string"},
        },
    ),
    "ActionBody": {
        "type": "object",
        "properties": {
            "ticket": {
                "type": "string",
                "pattern": TICKET_PATTERN,
                "description": "the client's reference, shown at the desk (printable ASCII)",
            },
            "note": {"type": "string", "maxLength": 500},
        },
    },
    "Callback": _obj(
        {
            "ext_id": {"type": "string", "minLength": 1},
            "action": {"type": "string", "enum": list(ACTIONS)},
            "ticket": {"type": "string", "pattern": TICKET_PATTERN},
            "note": {"type": "string"},
            "by": {"type": "string"},
        },
        required=["ext_id", "action"],
    ),
    "Login": _obj({"user": {"type": "string"}, "password": {"type": "string"}}),
    "WhoAmI": _obj(
        {
            "ok": {"const": True},
            "user": STR_OR_NULL,
            "via": {"enum": ["cookie", "token", None]},
            "public_read": {"type": "boolean"},
            "can_act": {"type": "boolean"},
            "expires": NUM_OR_NULL,
        },
    ),
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERR = _ref("Error")
READ_ERRORS = {"401": _json(_ERR, "reading needs a supervisor's login or token")}
ACTION_ERRORS = {
    "400": _json(_ERR, "the body is not the JSON object asked for"),
    "401": _json(_ERR, "no supervisor: log in or send a bearer token"),
    "403": _json(_ERR, "not allowed"),
    "413": _json(_ERR, "the body is too large"),
    "415": _json(_ERR, "an action by cookie must be JSON"),
    "429": _json(_ERR, "too many failed logins: wait"),
}
SUPERVISOR: list[dict[str, list[str]]] = [{"bearer": []}, {"session": []}]
READER: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"session": []}]  # {}: with --web-public


def _param(
    name: str, where: str, schema: dict[str, Any], required: bool, text: str
) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": schema, "description": text}


def _read(
    summary: str, schema: dict[str, Any], params: list[Any] | None = None, **extra: Any
) -> Any:
    responses = {"200": _json(schema, summary), **READ_ERRORS, **extra}
    op: dict[str, Any] = {"summary": summary, "security": READER, "responses": responses}
    if params:
        op["parameters"] = params
    return {"get": op}


def _action(summary: str, schema: dict[str, Any], params: list[Any], **extra: Any) -> Any:
    return {
        "post": {
            "summary": summary,
            "security": SUPERVISOR,
            "parameters": params,
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("ActionBody")}},
            },
            "responses": {"200": _json(schema, summary), **ACTION_ERRORS, **extra},
        }
    }


def _ok_with(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    return _obj({"ok": {"const": True}, key: schema})


NAME = {"type": "string", "minLength": 1}
EXT_ID = _param("ext_id", "path", NAME, True, "the escalation's id, e.g. DL-desk-03-1-57")
DEVICE = _param("device_id", "path", NAME, True, "the console's device id")
ACCOUNT_Q = _param("account", "query", NAME, True, "the account's key")
NOT_FOUND = {"404": _json(_ERR, "no such thing on this floor")}
UNPROCESSABLE = {"422": _json(_ERR, "the request names something the daemon cannot use")}


@cache
def document() -> dict[str, Any]:
    """The whole document (built once; it never changes while the daemon runs)."""
    paths: dict[str, Any] = {
        "/api/v1/health": {
            "get": {
                "summary": "Liveness: the daemon answers",
                "security": [{}],
                "responses": {
                    "200": _json(_obj({"ok": {"const": True}, "service": {"type": "string"}}), "up")
                },
            }
        },
        "/api/v1/dashboard": _read("The whole floor snapshot", _ref("Snapshot")),
        "/api/v1/floor": _read(
            "The floor plan and every desk",
            _obj({"ok": {"const": True}, "floor": _ref("Floor"), "desks": _arr(_ref("Desk"))}),
        ),
        "/api/v1/consoles": _read(
            "Every console's health", _ok_with("consoles", _arr(_ref("Health")))
        ),
        "/api/v1/consoles/{device_id}": _read(
            "One console: its desk and health",
            _obj(
                {
                    "ok": {"const": True},
                    "device_id": {"type": "string"},
                    "desk": {"oneOf": [{"type": "null"}, _ref("Desk")]},
                    "health": {"oneOf": [{"type": "null"}, _ref("Health")]},
                }
            ),
            [DEVICE],
            **NOT_FOUND,
        ),
        "/api/v1/queues": _read("Service level per account and queue", _ref("Service")),
        "/api/v1/escalations": _read(
            "Escalations and help requests, newest first",
            _ok_with("escalations", _arr(_ref("Escalation"))),
            [
                _param(
                    "open",
                    "query",
                    {"type": "boolean"},
                    False,
                    "only those not resolved or cancelled",
                )
            ],
            **UNPROCESSABLE,
        ),
        "/api/v1/reports/today": _read(
            "Today's wrap-up Pareto and failure-demand share for an account",
            _ok_with("report", {"type": "object"}),
            [ACCOUNT_Q],
            **NOT_FOUND,
            **UNPROCESSABLE,
        ),
        "/api/v1/reports/{account}": _read(
            "The failure-demand and escalation-SLA report (as `deskline report`)",
            _ok_with("report", {"type": "object"}),
            [
                _param("account", "path", NAME, True, "the account's key"),
                _param(
                    "from", "query", {"type": "string"}, False, "start: today, YYYY-MM-DD[THH:MM]"
                ),
                _param("to", "query", {"type": "string"}, False, "end (not included)"),
                _param(
                    "interval",
                    "query",
                    {"type": "string", "enum": ["15", "30", "60", "day"]},
                    False,
                    "the report's interval",
                ),
                _param("tz", "query", {"type": "string"}, False, "IANA time zone"),
            ],
            **NOT_FOUND,
            **UNPROCESSABLE,
        ),
        "/api/v1/stream": {
            "get": {
                "summary": "Live: the snapshot, then each section that changes (SSE)",
                "security": READER,
                "responses": {
                    "200": {
                        "description": "an endless text/event-stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **READ_ERRORS,
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics, from the same snapshot",
                "security": READER,
                "responses": {
                    "200": {
                        "description": "Prometheus text format 0.0.4",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **READ_ERRORS,
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [{}],
                "responses": {"200": _json({"type": "object"}, "the OpenAPI document")},
            }
        },
        "/api/v1/whoami": {
            "get": {
                "summary": "Who this request is, and what it may do",
                "security": READER,
                "responses": {"200": _json(_ref("WhoAmI"), "the caller")},
            }
        },
        "/api/v1/login": {
            "post": {
                "summary": "A browser's login: sets the session cookie",
                "security": [{}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Login")}},
                },
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "ok": {"const": True},
                                "user": {"type": "string"},
                                "expires": NUM_OR_NULL,
                            }
                        ),
                        "in: the session cookie is set",
                    ),
                    "400": _json(_ERR, "not a JSON login"),
                    "401": _json(_ERR, "wrong user name or password"),
                    "415": _json(_ERR, "not JSON"),
                    "429": _json(_ERR, "too many failed logins: wait"),
                },
            }
        },
        "/api/v1/logout": {
            "post": {
                "summary": "Ends a browser's session",
                "security": [{}],
                "responses": {"200": _json(_obj({"ok": {"const": True}}), "out")},
            }
        },
        "/api/v1/escalations/{ext_id}/acknowledge": _action(
            "Acknowledge on the client's behalf (the client phoned back)",
            _ref("Answered"),
            [EXT_ID],
            **NOT_FOUND,
            **{"409": _json(_ERR, "the escalation cannot take that now")},
        ),
        "/api/v1/escalations/{ext_id}/resolve": _action(
            "Resolve on the client's behalf",
            _ref("Answered"),
            [EXT_ID],
            **NOT_FOUND,
            **{"409": _json(_ERR, "the escalation cannot take that now")},
        ),
        "/api/v1/consoles/{device_id}/reboot": _action(
            "Reboot a console",
            _ref("CommandResult"),
            [DEVICE],
            **NOT_FOUND,
            **{"409": _json(_ERR, "the console is offline or refused")},
        ),
        "/api/v1/consoles/{device_id}/config": _action(
            "Push the console's account config again",
            _obj({"ok": {"const": True}, "device": {"type": "string"}, "version": INT_OR_NULL}),
            [DEVICE],
            **NOT_FOUND,
            **{"409": _json(_ERR, "the console is offline or has no desk")},
        ),
        "/api/v1/floor/reload": _action(
            "Re-read the floor file and push what changed",
            _obj({"ok": {"const": True}, "errors": _arr({"type": "string"})}),
            [],
            **{"422": _json(_ERR, "the floor file has errors: the previous floor stays")},
        ),
        "/api/v1/callbacks": {
            "post": {
                "summary": "The client's signed acknowledge/resolve (docs/escalations.md)",
                "security": [{"signature": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Callback")}},
                },
                "responses": {
                    "200": _json(_ref("Answered"), "applied"),
                    "400": _json(_ERR, "not a callback"),
                    "401": _json(_ERR, "bad or missing signature"),
                    "403": _json(_ERR, "the account has no webhook secret"),
                    "404": _json(_ERR, "no such escalation"),
                    "409": _json(_ERR, "replayed, or not possible now"),
                    "413": _json(_ERR, "too large"),
                    "503": _json(_ERR, "the secret cannot be read"),
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Deskline daemon API",
            "version": f"{VERSION} (deskline {_version_of_package})",
            "description": "The supervisors' floor view and actions (docs/dashboard.md).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "deskline supervisor token NAME",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": "deskline_session"},
                "signature": {"type": "apiKey", "in": "header", "name": "Deskline-Signature"},
            },
        },
    }
