"""`freeswitch-json`: mod_json_cdr's documents, as the module posts or writes them.

The module (src/mod/event_handlers/mod_json_cdr/mod_json_cdr.c of FreeSWITCH) posts the
document built by switch_ivr_generate_json_cdr (src/switch_ivr.c) as JSON
(`encode=false`), as `cdr=<URL-encoded JSON>` (`encode=true`) or as `cdr=<base64>`
(`encode=base64`); its log-dir files hold the JSON itself. With `encode-values` (the module's
default) every channel variable's value is URL-encoded; caller profiles never are.

What each field becomes (docs/SWITCHES.md):
- cdr_id: variables.uuid; account: variables.accountcode, or the variable the `account` option
  names; card and auth_id: the variables the `card` and `auth_id` options name, when set;
- caller, callee: callflow[0].caller_profile's caller_id_number and destination_number (the
  latest profile: after a transfer, the number dialled last), else variables.sip_from_user and
  sip_req_user;
- times: variables.start_epoch, answer_epoch (0: not answered) and end_epoch, UTC (or their
  *_uepoch; else the local *_stamp in the switch's time zone);
- billsec: variables.billsec, or billmsec with `billsec=billmsec`, rounded by `fractions`;
- a channel with an originator (a B-leg: log-b-leg is on by default) is another leg of a call:
  counted, never billed. The stored switch is rater's name for it, not FreeSWITCH's switchname.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson

from rater.pipeline.decode import OTHER_LEG, InvalidRecord
from rater.pipeline.formats.common import (
    Context,
    Option,
    epoch_of,
    integer_of,
    local_moment,
    milliseconds_of,
    place_call,
    text_of,
)
from rater.reasons import Kind, cap

NAME = "freeswitch-json"
OPTIONS = {
    "encode-values": Option("true", ("true", "false"), "mod_json_cdr's encode-values"),
    "billsec": Option(
        "billsec", ("billsec", "billmsec"), "answered seconds from billsec or billmsec"
    ),
    "account": Option("accountcode", (), "the channel variable naming the account"),
    "card": Option("rater_card", (), "the channel variable naming a calling card"),
    "auth_id": Option("rater_auth_id", (), "the channel variable holding the authorization id"),
}

#: FreeSWITCH's *_stamp variables (switch_channel_set_timestamps, src/switch_channel.c)
STAMP = "%Y-%m-%d %H:%M:%S"

#: hangup causes of calls that were not answered, as the disposition column names them
_CAUSES = {
    "USER_BUSY": "BUSY",
    "NO_ANSWER": "NO ANSWER",
    "NO_USER_RESPONSE": "NO ANSWER",
    "ORIGINATOR_CANCEL": "CANCEL",
    "NORMAL_CLEARING": "NO ANSWER",
    "CALL_REJECTED": "FAILED",
    "NORMAL_CIRCUIT_CONGESTION": "CONGESTION",
    "SWITCH_CONGESTION": "CONGESTION",
    "CHAN_NOT_IMPLEMENTED": "CHANUNAVAIL",
    "SUBSCRIBER_ABSENT": "CHANUNAVAIL",
}


def document(value: bytes) -> dict[str, Any]:
    """The JSON document of a body or file: JSON, or form-encoded `cdr=...` (URL-encoded or
    base64, the module's `encode` setting)."""
    raw = value.strip()
    if raw.startswith(b"cdr="):
        raw = unwrap_form(raw[4:].split(b"&", 1)[0])
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, cap(str(error))) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(Kind.NOT_AN_OBJECT, "a mod_json_cdr document is a JSON object")
    return obj


def unwrap_form(body: bytes) -> bytes:
    text = body.decode("ascii", errors="replace")
    decoded = unquote_plus(text)
    if decoded.lstrip().startswith("{"):
        return decoded.encode()
    try:  # encode=base64: the form value is base64 of the JSON, not URL-encoded
        return base64.b64decode(text, validate=False)
    except (binascii.Error, ValueError):
        raise InvalidRecord(
            Kind.BAD_JSON, "cdr= holds neither URL-encoded JSON nor base64"
        ) from None


def is_other_leg(doc: dict[str, Any]) -> bool:
    """A channel with an originator: the B-leg of a bridged call (mod_json_cdr's is_b)."""
    profile = _profile(doc)
    return bool(profile.get("originator"))


def _profile(doc: dict[str, Any]) -> dict[str, Any]:
    flow = doc.get("callflow")
    first = flow[0] if isinstance(flow, list) and flow else flow
    profile = first.get("caller_profile") if isinstance(first, dict) else None
    return profile if isinstance(profile, dict) else {}


def convert(value: bytes, ctx: Context) -> dict[str, Any]:
    doc = document(value)
    if is_other_leg(doc):
        return OTHER_LEG
    variables = doc.get("variables")
    if not isinstance(variables, dict):
        raise InvalidRecord(Kind.MISSING, "variables (a mod_json_cdr document has them)")
    encoded = ctx.options["encode-values"] == "true"

    def var(name: str) -> str:
        raw = variables.get(name)
        if raw is None or raw == "":
            return ""
        text = text_of(raw, f"variables.{name}")
        return unquote(text) if encoded else text

    profile = _profile(doc)
    cdr_id = var("uuid") or text_of(None, "variables.uuid")
    caller = _profile_text(profile, "caller_id_number") or var("sip_from_user")
    callee = _profile_text(profile, "destination_number") or var("sip_req_user")
    account_var = ctx.options["account"]
    account = var(account_var)
    if not account:
        raise InvalidRecord(Kind.MISSING, f"variables.{account_var} (the account)")
    billsec = _billsec(var, ctx)
    duration_text = var("duration")
    duration = integer_of(duration_text, "variables.duration") if duration_text else None
    start, answer, end = _times(var, ctx, duration, billsec)
    cause = var("hangup_cause")
    disposition = "ANSWERED" if billsec > 0 else _CAUSES.get(cause, "FAILED")
    return {
        "cdr_id": cdr_id,
        "switch": ctx.switch,
        "account": account,
        "card": var(ctx.options["card"]),
        "auth_id": var(ctx.options["auth_id"]),
        "caller": caller or text_of(None, "callflow[0].caller_profile.caller_id_number"),
        "callee": callee or text_of(None, "callflow[0].caller_profile.destination_number"),
        "access_number": "",
        "start_time": start,
        "answer_time": answer,
        "end_time": end,
        "duration": duration,
        "billsec": billsec,
        "disposition": disposition,
        "hangup_cause": cause,
    }


def _profile_text(profile: dict[str, Any], name: str) -> str:
    value = profile.get(name)
    return value if isinstance(value, str) else ""


def _billsec(var: Any, ctx: Context) -> int:
    if ctx.options["billsec"] == "billmsec":
        return milliseconds_of(var("billmsec"), "variables.billmsec", round_up=ctx.round_up)
    return integer_of(var("billsec"), "variables.billsec")


def _times(var: Any, ctx: Context, duration: int | None, billsec: int) -> tuple[int, int, int]:
    """UTC epochs (start_epoch, or start_uepoch in microseconds); else local *_stamp times."""
    if var("start_epoch") or var("start_uepoch"):
        start = _epoch(var, "start")
        end = _epoch(var, "end")
        answer = _epoch(var, "answer") if var("answer_epoch") or var("answer_uepoch") else 0
        return start, answer, end
    start_stamp = local_moment(var("start_stamp"), "variables.start_stamp", STAMP)
    end_stamp = local_moment(var("end_stamp"), "variables.end_stamp", STAMP)
    answer_text = var("answer_stamp")
    answer_stamp = (
        local_moment(answer_text, "variables.answer_stamp", STAMP) if answer_text else None
    )
    return place_call(
        start_stamp, answer_stamp, end_stamp, ctx.tz, duration=duration, billsec=billsec
    )


def _epoch(var: Any, name: str) -> int:
    seconds = var(f"{name}_epoch")
    if seconds:
        return epoch_of(seconds, f"variables.{name}_epoch")
    return epoch_of(var(f"{name}_uepoch"), f"variables.{name}_uepoch", divisor=1_000_000)
