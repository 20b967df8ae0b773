"""`kamailio-json`: the CDR records of Kamailio's acc_json module (cdr_enable=1).

acc_json (src/modules/acc_json/acc_json_mod.c, cdr_json_write) writes one JSON object per
dialog with string values only: acc's core attributes `start_time`, `end_time` and `duration`
(src/modules/acc/acc_cdr.c, time2string: "<seconds>.<fraction>", e.g. "1700000000.123" and
"65.432"), then each cdr_extra field under its own name. With acc's cdr_start_on_confirmed
set to 1, start_time is the answer and duration the answered seconds; a dialog that failed
(acc's cdr_on_failed) has duration "0".

What each field becomes (docs/SWITCHES.md gives the cdr_extra line):
- cdr_id: call_id, with ";from-tag=" and from_tag where the record has one (a call id alone
  is not unique across the legs a proxy forks);
- caller, callee: src_user and dst_user; account: the cdr_extra field the `account` option
  names (default `account`);
- start: the cdr_extra field the `setup` option names (default `setup_time`, the INVITE's
  $TS kept in a dlg_var) where the record has it, else acc's start_time (the answer);
  answer: acc's start_time when answered; end: end_time;
- billsec: duration, rounded up to whole seconds (a started second is billed) or down, as
  the switch's `fractions` option says.
"""

from __future__ import annotations

from typing import Any

import orjson

from rater.pipeline.decode import InvalidRecord
from rater.pipeline.formats.common import Context, Option, epoch_of, seconds_of, text_of
from rater.reasons import Kind, cap

NAME = "kamailio-json"
OPTIONS = {
    "account": Option("account", (), "the cdr_extra field naming the account"),
    "setup": Option("setup_time", (), "the cdr_extra field holding the INVITE's time ($TS)"),
}


def convert(value: bytes, ctx: Context) -> dict[str, Any]:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidRecord(Kind.BAD_JSON, cap(str(error))) from None
    if not isinstance(obj, dict):
        raise InvalidRecord(Kind.NOT_AN_OBJECT, "an acc_json CDR is a JSON object")
    call_id = text_of(obj.get("call_id"), "call_id")
    from_tag = text_of(obj.get("from_tag"), "from_tag", required=False)
    billsec = seconds_of(obj.get("duration"), "duration", round_up=ctx.round_up)
    answered_at = epoch_of(obj.get("start_time"), "start_time")
    end = epoch_of(obj.get("end_time"), "end_time")
    setup_name = ctx.options["setup"]
    setup_raw = obj.get(setup_name)
    start = epoch_of(setup_raw, setup_name) if setup_raw not in (None, "") else answered_at
    account_name = ctx.options["account"]
    cause = text_of(obj.get("sip_code"), "sip_code", required=False)
    return {
        "cdr_id": f"{call_id};from-tag={from_tag}" if from_tag else call_id,
        "switch": ctx.switch,
        "account": text_of(obj.get(account_name), f"{account_name} (the account)"),
        "caller": text_of(obj.get("src_user"), "src_user"),
        "callee": text_of(obj.get("dst_user"), "dst_user"),
        "access_number": "",
        "card": text_of(obj.get("card"), "card", required=False),
        "auth_id": text_of(obj.get("auth_id"), "auth_id", required=False),
        "start_time": start,
        "answer_time": answered_at if billsec > 0 else 0,
        "end_time": end,
        "duration": end - start if end >= start else None,
        "billsec": billsec,
        "disposition": "ANSWERED" if billsec > 0 else "NO ANSWER",
        "hangup_cause": cause,
    }
