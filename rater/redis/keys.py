"""Every Redis key name of rater, in one place (docs/REDIS_KEYS.md explains the layout).

**Names.** A name that arrives in a record (switch, account, card) or is free text (a tariff
table: "Calling cards rates 40% - 60/60 billing - 29 sept 2008") reaches a key only through
`name()`: characters of the id set `[A-Za-z0-9_.@+-]` stay as they are, every other one becomes
`%XX` per UTF-8 byte. An encoded name therefore never holds `:`, `{`, `}`, spaces, NUL or a
newline, so it cannot end a segment, open or close a hash tag, or spell another family's key.
Ids rater creates (resellers, customers, batches) are validated against the id set
(`check_id`), so they encode to themselves and their keys read as plain text.

**Shapes.** Each key family is one `Shape`: literal text and named segments. The Python
builders below call it; `rater/redis/contract.py` turns the same shapes into the Lua key
functions every script gets (`K.<family>(...)`, arguments already encoded), so Python and Lua
cannot spell a key differently. A family's first segment is its own literal (`acct:`, `card:`,
`switch:`, ...) and no fixed key has the form `<family literal>:<one segment>`, so a name can
never produce a fixed key.

**Slots.** Everything of reseller R carries the hash tag `{r:<R>}`; a tariff table's keys the
tag `{<name>}`; a de-duplication claim shard the tag `{dc:<n>}`. Encoded names are never empty
where they form a tag (`_tag` refuses), so the tag is never `{}` (which would hash the whole key).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from urllib.parse import unquote

from rater.errors import AccountError, KeyNameError

#: ids rater creates (resellers, customers, batches): no ':' '{' '}' '%' or spaces
ID_CHARS = "A-Za-z0-9_.@+\\-"
# fullmatch, not '^...$': '$' also matches before a trailing newline ('C1\n')
_ID = re.compile(f"[{ID_CHARS}]{{1,64}}")
_PLAIN = re.compile(f"[{ID_CHARS}]*")
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+-")


def check_id(kind: str, value: str) -> str:
    """The id itself; AccountError naming the field when it is not 1-64 id characters."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise AccountError(
            f"{kind} id {value!r} must be 1-64 characters of letters, digits, '_', '.', '@', '+' "
            "or '-'"
        )
    return value


def name(value: str) -> str:
    """The key form of a name: itself when plain, else '%XX' for each byte outside the id set."""
    if _PLAIN.fullmatch(value):
        return value
    out = []
    for char in value:
        if char in _SAFE:
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    return "".join(out)


def name_of(encoded: str) -> str:
    """The name back from its key form (name_of(name(x)) == x)."""
    if "%" not in encoded:
        return encoded
    return unquote(encoded, encoding="utf-8", errors="surrogatepass")


def is_plain(value: str) -> bool:
    """True when value is its own key form (only id characters)."""
    return bool(_PLAIN.fullmatch(value))


# ------------------------------------------------------------------------------------ shapes
_SEGMENT = re.compile(r"<(\w+)>")


@dataclass(frozen=True)
class Shape:
    """One key family: `template` is literal text with `<segment>` placeholders."""

    family: str
    template: str

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(_SEGMENT.findall(self.template))

    def pieces(self) -> list[tuple[bool, str]]:
        """(is_segment, text) in order: the template split at its placeholders."""
        out: list[tuple[bool, str]] = []
        for i, piece in enumerate(_SEGMENT.split(self.template)):
            if piece:
                out.append((i % 2 == 1, piece))
        return out

    def encoded(self, *values: str) -> str:
        """The key from segments that are already in key form (what the Lua functions do)."""
        if len(values) != len(self.segments):
            raise KeyNameError(f"key {self.family}: {len(values)} segments for {self.template}")
        it = iter(values)
        return "".join(next(it) if segment else text for segment, text in self.pieces())

    def __call__(self, *values: str | int) -> str:
        """The key, each segment encoded with name() (ints as decimal)."""
        return self.encoded(*(str(v) if isinstance(v, int) else name(v) for v in values))


#: every key family; the Lua header gets one function per entry (rater/redis/contract.py)
SHAPES: dict[str, Shape] = {
    s.family: s
    for s in (
        # one reseller's slot
        Shape("tag", "{r:<res>}"),
        Shape("reseller", "{r:<res>}:res"),
        Shape("customers_of", "{r:<res>}:customers"),
        Shape("customer", "{r:<res>}:c:<cust>"),
        Shape("cards_of", "{r:<res>}:c:<cust>:cards"),
        Shape("card", "{r:<res>}:k:<card>"),
        Shape("card_anis", "{r:<res>}:k:<card>:ani"),
        Shape("batch", "{r:<res>}:batch:<batch>"),
        Shape("events", "{r:<res>}:events"),
        Shape("reservations", "{r:<res>}:rsv:<level>:<id>"),
        Shape("reservation_expiry", "{r:<res>}:rsvexp:<level>:<id>"),
        Shape("reservation_totals", "{r:<res>}:rsvsum:<level>:<id>"),
        Shape("reseller_records", "{r:<res>}:d:<bucket>"),
        Shape("watermark", "{r:<res>}:wm:<topic>:<part>"),
        Shape("correction", "{r:<res>}:corr:<key>"),
        Shape("auth_record", "{r:<res>}:auth:<auth>"),
        Shape("ledger_applied", "{r:<res>}:applied:<day>"),
        Shape("portal_login", "{r:<res>}:portal"),
        Shape("portal_census", "{r:<res>}:census"),
        Shape("portal_census_lock", "{r:<res>}:census:lock"),
        # de-duplication across resellers (docs/REDIS_KEYS.md, "De-duplication records")
        Shape("records", "d:<bucket>"),
        Shape("claims", "{dc:<shard>}:<bucket>"),
        Shape("partition_watermark", "wm:<topic>:<part>"),
        # global look-ups
        Shape("account_index", "acct:<cust>"),
        Shape("card_index", "card:<card>"),
        Shape("ani_index", "ani:<digits>"),
        Shape("ani_owner", "aniown:<digits>"),
        Shape("batch_index", "batchid:<batch>"),
        Shape("auth_index", "auth:<auth>"),
        # switches and tariffs
        Shape("switch", "switch:<switch>"),
        Shape("tariff_index", "tariff:{<tariff>}:index"),
        Shape("tariff_version", "tariff:{<tariff>}:v:<version>"),
        Shape("tariff_owner", "tariff:{<tariff>}:owner"),
        # operations
        Shape("dlq_watermark", "rater:dlq:wm:<topic>:<part>"),
        Shape("dlq_replayed", "rater:dlq:replayed:<topic>:<part>"),
        Shape("rerate_plans", "rerate:plans:<day>"),
        Shape("pin_guard_caller", "pinguard:caller:<digits>"),
        # the HTTP service's switch credentials (rater/serve/credentials.py)
        Shape("switch_token", "switchauth:token:<token>"),
        Shape("switch_tokens", "switchauth:tokens:<switch>"),
        Shape("switch_scope", "switchauth:scope:<switch>"),
        Shape("pin_guard_switch", "pinguard:switch:<switch>:<minute>"),
        Shape("loadgen_scenario", "loadgen:scenario:<scenario>"),
        # the reseller portal's failed logins (rater/portal/auth.py)
        Shape("portal_failures", "portal:fail:<who>"),
    )
}

# fixed keys (none has the form '<family literal>:<one segment>' of a family above)
GENERATION = "accounts:generation"
RESELLERS = "resellers"
SWITCHES = "switches"
SWITCHES_GENERATION = "switches:generation"
TARIFFS = "tariff:names"
TARIFFS_GENERATION = "tariff:generation"
LEDGER_PENDING = "ledger:pending"
RERATE_LOCK = "rerate:lock"
SWITCH_AUTH_SWITCHES = "switchauth:switches"
SWITCH_AUTH_GENERATION = "switchauth:generation"
#: the fixed keys by name (the Lua header defines them as FIXED.<name>)
FIXED_KEYS = {
    "generation": GENERATION, "resellers": RESELLERS, "switches": SWITCHES,
    "switches_generation": SWITCHES_GENERATION, "tariffs": TARIFFS,
    "tariffs_generation": TARIFFS_GENERATION, "ledger_pending": LEDGER_PENDING,
    "rerate_lock": RERATE_LOCK, "switch_auth_switches": SWITCH_AUTH_SWITCHES,
    "switch_auth_generation": SWITCH_AUTH_GENERATION,
}  # fmt: skip
FIXED = tuple(FIXED_KEYS.values())

#: keys of the layout before names were encoded, moved once by rater/redis/legacy.py
LEGACY_SWITCH_NAMES = "switch:names"  # a set; now SWITCHES
LEGACY_SWITCH_GENERATION = "switch:generation"  # now SWITCHES_GENERATION


def legacy_tariff_keys(tariff: str, versions: list[int]) -> tuple[str, list[str]]:
    """(index, version keys) of a tariff table as they were before names were encoded."""
    return f"tariff:{{{tariff}}}:index", [f"tariff:{{{tariff}}}:v:{v}" for v in versions]


#: shards of the cross-reseller de-duplication claims on Redis Cluster (one slot each)
CLAIM_SHARDS = 16


def _nonempty(value: str, what: str) -> str:
    if not value:
        raise KeyNameError(f"{what}: an empty name cannot form a hash tag")
    return value


# ------------------------------------------------------------------------ one reseller's slot
def tag(reseller_id: str) -> str:
    """The hash tag of a reseller ('' gives `{r:}`, the slot of CDRs of unknown accounts)."""
    return SHAPES["tag"](reseller_id)


def reseller(reseller_id: str) -> str:
    return SHAPES["reseller"](reseller_id)


def customers_of(reseller_id: str) -> str:
    return SHAPES["customers_of"](reseller_id)


def customer(reseller_id: str, customer_id: str) -> str:
    return SHAPES["customer"](reseller_id, customer_id)


def cards_of(reseller_id: str, customer_id: str) -> str:
    return SHAPES["cards_of"](reseller_id, customer_id)


def card(reseller_id: str, number: str) -> str:
    return SHAPES["card"](reseller_id, number)


def card_anis(reseller_id: str, number: str) -> str:
    return SHAPES["card_anis"](reseller_id, number)


def batch(reseller_id: str, batch_id: str) -> str:
    return SHAPES["batch"](reseller_id, batch_id)


def events(reseller_id: str) -> str:
    return SHAPES["events"](reseller_id)


def reservations(reseller_id: str, level: str, account_id: str) -> str:
    """Live reservations of one account: hash auth_id -> 'amount:expires_epoch_s'."""
    return SHAPES["reservations"](reseller_id, level, account_id)


def reservation_expiry(reseller_id: str, level: str, account_id: str) -> str:
    """The same auth_ids as `reservations`, in a sorted set scored by their expiry (epoch s)."""
    return SHAPES["reservation_expiry"](reseller_id, level, account_id)


def reservation_totals(reseller_id: str, level: str, account_id: str) -> str:
    """Hash `held` (micro-units) and `calls`: the sum and count of the entries of
    `reservations`, kept by every script that adds or drops one."""
    return SHAPES["reservation_totals"](reseller_id, level, account_id)


def reseller_records(reseller_id: str, bucket: int) -> str:
    """Redis Cluster: the de-duplication records (with outcomes) of one reseller's slot."""
    return SHAPES["reseller_records"](reseller_id, bucket)


def watermark(reseller_id: str, topic_id: str, partition: int) -> str:
    return SHAPES["watermark"](reseller_id, topic_id, partition)


def correction(reseller_id: str, key: str) -> str:
    """Marks a re-rate correction as applied. `key` (correction_id) is kept as given: it is
    length-prefixed and follows the tag, so it can neither move the slot nor meet another family;
    keeping it as it was keeps applied corrections recognised."""
    return SHAPES["correction"].encoded(name(reseller_id), key)


def auth_record(reseller_id: str, auth_id: str) -> str:
    """One reservation (customer, card, number, start, expiry, seconds, amounts). The auth id
    is kept as given: rater/accounts/ids.py admits no ':', braces, spaces or control characters,
    and reserve.lua builds the same name from it."""
    return SHAPES["auth_record"].encoded(name(reseller_id), auth_id)


def ledger_applied(reseller_id: str, day: int) -> str:
    """The ledger entry ids applied to reseller R's balances on one UTC day (epoch day number):
    hash entry_id -> '1', kept for the recovery horizon (rater/billing/recovery.py)."""
    return SHAPES["ledger_applied"](reseller_id, day)


def correction_id(switch: str, cdr_id: str, revision: int) -> str:
    """Unique per CDR revision; the switch name's length makes it unambiguous with ':' in ids."""
    return f"rerate:{len(switch)}:{switch}:{cdr_id}:{revision}"


# ------------------------------------------------------------------------- de-duplication
def records(bucket: int) -> str:
    """One server: the de-duplication records of every CDR of one time bucket."""
    return SHAPES["records"](bucket)


def claims(shard: int, bucket: int) -> str:
    """Redis Cluster: the claims of one shard of (switch, cdr_id)s in one time bucket."""
    return SHAPES["claims"](shard, bucket)


def dedup_field(switch: str, cdr_id: str) -> str:
    """A CDR's field in its bucket; length-prefixed: ('a:b', 'c') differs from ('a', 'b:c').
    A hash field, not a key: binary-safe, so switch and cdr_id are kept as they are."""
    return f"{len(switch)}:{switch}:{cdr_id}"


def partition_watermark(topic_id: str, partition: int) -> str:
    """The highest offset applied in one (topic identity, partition), all resellers together."""
    return SHAPES["partition_watermark"](topic_id, partition)


# ------------------------------------------------------------------------- global look-ups
def account_index(customer_id: str) -> str:
    """Customer id (the CDR's `account`) -> reseller id."""
    return SHAPES["account_index"](customer_id)


def card_index(number: str) -> str:
    """Card number -> '<reseller_id>:<customer_id>'."""
    return SHAPES["card_index"](number)


def ani_index(number: str) -> str:
    """Caller number -> card number, present only while the card is at or above the threshold."""
    return SHAPES["ani_index"](number)


def ani_owner(number: str) -> str:
    """Caller number -> the card that owns it (permanent, for uniqueness)."""
    return SHAPES["ani_owner"](number)


def batch_index(batch_id: str) -> str:
    """Batch id -> '<reseller_id>:<customer_id>'."""
    return SHAPES["batch_index"](batch_id)


def auth_index(auth_id: str) -> str:
    """auth_id -> the reseller whose keys hold the reservation (kept as given, see
    auth_record)."""
    return SHAPES["auth_index"].encoded(auth_id)


# ----------------------------------------------------------------------- switches, tariffs
def switch(switch_name: str) -> str:
    """A switch's settings (hash); the names are in SWITCHES."""
    return SHAPES["switch"](switch_name)


def tariff_index(tariff: str) -> str:
    """Hash version -> JSON header of one tariff table."""
    return SHAPES["tariff_index"](_nonempty(tariff, "tariff"))


def tariff_owner(tariff: str) -> str:
    """The reseller id owning a table; absent for the operator's tables."""
    return SHAPES["tariff_owner"](_nonempty(tariff, "tariff"))


def portal_login(reseller_id: str) -> str:
    """The portal password hash of a reseller and its session generation."""
    return SHAPES["portal_login"](_nonempty(reseller_id, "reseller"))


def portal_census(reseller_id: str) -> str:
    """The portal's latest count of a reseller's cards (JSON, expiring)."""
    return SHAPES["portal_census"](_nonempty(reseller_id, "reseller"))


def portal_census_lock(reseller_id: str) -> str:
    """Held while one serve process counts a reseller's cards."""
    return SHAPES["portal_census_lock"](_nonempty(reseller_id, "reseller"))


def portal_failures(who: str) -> str:
    """Failed portal logins of one reseller id (`id:<R>`) or client address (`ip:<addr>`)."""
    return SHAPES["portal_failures"](_nonempty(who, "who"))


def tariff_version(tariff: str, version: int) -> str:
    """One version of a tariff table (its rows, encoded); in the slot of tariff_index."""
    return SHAPES["tariff_version"](_nonempty(tariff, "tariff"), version)


# ---------------------------------------------------------------------------- operations
def dlq_watermark(topic_id: str, partition: int) -> str:
    """Highest offset of a (topic identity, partition) already dead-lettered."""
    return SHAPES["dlq_watermark"](topic_id, partition)


def dlq_replayed(topic: str, partition: int) -> str:
    """Highest dead-letter offset `rater dlq replay` published again."""
    return SHAPES["dlq_replayed"](topic, partition)


def rerate_plans(day: date) -> str:
    """Plans of re-rated CDRs started on one UTC day (a hash, one field per CDR revision)."""
    return SHAPES["rerate_plans"](day.isoformat())


def pin_guard_caller(digits: str) -> str:
    """Wrong PINs of one caller number, any card."""
    return SHAPES["pin_guard_caller"](digits)


def pin_guard_switch(switch_name: str, minute: int) -> str:
    """Wrong PINs from one switch in one minute (epoch s // 60)."""
    return SHAPES["pin_guard_switch"](switch_name, minute)


def switch_token(token_id: str) -> str:
    """One API token of a switch (hash switch, sha256, created)."""
    return SHAPES["switch_token"](token_id)


def switch_tokens(switch_name: str) -> str:
    """The token ids of one switch (set)."""
    return SHAPES["switch_tokens"](switch_name)


def switch_scope(switch_name: str) -> str:
    """What one switch may do (hash resellers, networks)."""
    return SHAPES["switch_scope"](switch_name)


def loadgen_scenario(scenario: str) -> str:
    return SHAPES["loadgen_scenario"](scenario)
