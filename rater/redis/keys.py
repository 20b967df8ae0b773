"""Redis key names of the account model (docs/REDIS_KEYS.md explains the layout).

Everything of one reseller shares the hash tag `{r:<reseller_id>}` so a later step can run one
Lua call per reseller slot on Redis Cluster. Global look-ups (card number, ANI, customer id ->
reseller) are their own keys. CDRs whose account is unknown are kept under the pseudo-reseller
tag `{r:}` (empty id) for their de-duplication records and watermarks.
"""

from __future__ import annotations

import re

from rater.errors import AccountError

#: ids of resellers, customers and batches: no ':' '{' '}' or spaces, so keys stay unambiguous
_ID = re.compile(r"^[A-Za-z0-9_.@+\-]{1,64}$")

GENERATION = "accounts:generation"
RESELLERS = "resellers"


def check_id(kind: str, value: str) -> str:
    """The id itself; AccountError naming the field when it cannot be used in a key."""
    if not isinstance(value, str) or not _ID.match(value):
        raise AccountError(
            f"{kind} id {value!r} must be 1-64 characters of letters, digits, '_', '.', '@', '+' "
            "or '-'"
        )
    return value


def tag(reseller_id: str) -> str:
    """The hash tag of a reseller ('' for CDRs of unknown accounts)."""
    return "{r:" + reseller_id + "}"


def reseller(reseller_id: str) -> str:
    return tag(reseller_id) + ":res"


def customers_of(reseller_id: str) -> str:
    return tag(reseller_id) + ":customers"


def customer(reseller_id: str, customer_id: str) -> str:
    return f"{tag(reseller_id)}:c:{customer_id}"


def cards_of(reseller_id: str, customer_id: str) -> str:
    return f"{tag(reseller_id)}:c:{customer_id}:cards"


def card(reseller_id: str, number: str) -> str:
    return f"{tag(reseller_id)}:k:{number}"


def card_anis(reseller_id: str, number: str) -> str:
    return f"{tag(reseller_id)}:k:{number}:ani"


def batch(reseller_id: str, batch_id: str) -> str:
    return f"{tag(reseller_id)}:batch:{batch_id}"


def events(reseller_id: str) -> str:
    return tag(reseller_id) + ":events"


def reservations(reseller_id: str, level: str, account_id: str) -> str:
    """Live reservations of one account: hash auth_id -> 'amount:expires_epoch_s'."""
    return f"{tag(reseller_id)}:rsv:{level}:{account_id}"


def dedup_bucket(reseller_id: str, bucket: int) -> str:
    """Hash of the de-duplication records of one time bucket (epoch seconds // window)."""
    return f"{tag(reseller_id)}:d:{bucket}"


def dedup_field(switch: str, cdr_id: str) -> str:
    """A CDR's field in its bucket; length-prefixed: ('a:b', 'c') differs from ('a', 'b:c')."""
    return f"{len(switch)}:{switch}:{cdr_id}"


def watermark(reseller_id: str, topic_id: str, partition: int) -> str:
    return f"{tag(reseller_id)}:wm:{topic_id}:{partition}"


def partition_watermark(topic_id: str, partition: int) -> str:
    """The highest offset applied in one (topic identity, partition), all resellers together."""
    return f"wm:{topic_id}:{partition}"


def correction(reseller_id: str, key: str) -> str:
    return f"{tag(reseller_id)}:corr:{key}"


# ---------------------------------------------------------------- global look-ups
def account_index(customer_id: str) -> str:
    """Customer id (the CDR's `account`) -> reseller id."""
    return f"acct:{customer_id}"


def card_index(number: str) -> str:
    """Card number -> '<reseller_id>:<customer_id>'."""
    return f"card:{number}"


def ani_index(number: str) -> str:
    """Caller number -> card number, present only while the card is at or above the threshold."""
    return f"ani:{number}"


def batch_index(batch_id: str) -> str:
    """Batch id -> '<reseller_id>:<customer_id>'."""
    return f"batchid:{batch_id}"
