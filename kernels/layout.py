"""The layout of the compiled tariff arrays: the one contract between the compiler
(rater/tariffs/compile.py, which writes the arrays) and the kernels (which read them).

Both sides import these names from here; tests/unit/test_kernel_layout.py checks the rest of
the agreement (rounding codes, the order of the kernel's tariff arguments).
"""

from __future__ import annotations

# ------------------------------------------------------------------ the prefix trie
#: E.164 numbers have at most 15 digits; prefixes are at most as long as the numbers they match
E164_MAX_DIGITS = 15
#: numbers with fewer digits are short numbers (extensions, service and emergency codes): a
#: tariff row matches them only when its prefix is the whole number (docs/DESIGN.md section 4),
#: so extension 1002 never takes the rate of prefix 1
E164_MIN_DIGITS = 6
ROOT_DIGITS = 5  # a 400 KB root for large versions: one read fewer than 4 digits
SMALL_ROOT_DIGITS = 3  # a 4 KB root for small versions (one level more, but all in cache)
#: versions with fewer prefixes get the small root: a retail deck of a few thousand codes then
#: takes a few hundred KB of cache instead of spreading its calls over a 400 KB root
SMALL_ROOT_BELOW = 5_000
BLOCK_DIGITS = 2  # 100-entry child blocks (400 bytes)
#: trie levels: the root and 6 levels of BLOCK_DIGITS below it
LEVELS = 7
#: numbers are matched as integers left-aligned in a space of PAD_DIGITS digits:
#: the large root and every level below it (5 + 6 * 2 = 17 digits)
PAD_DIGITS = ROOT_DIGITS + (LEVELS - 1) * BLOCK_DIGITS
# the small root with every level still reaches the longest E.164 prefix (3 + 6 * 2 = 15)
assert SMALL_ROOT_DIGITS + (LEVELS - 1) * BLOCK_DIGITS >= E164_MAX_DIGITS

# ------------------------------------------------------------------ time and money bounds
INT64_MAX = 2**63 - 1
TIME_MIN = -(2**63)  # the beginning of time
TIME_MAX = INT64_MAX  # never

#: Bounds that keep every intermediate of the kernel's integer price inside int64 and billable
#: seconds inside int32, for every non-negative int32 billsec up to MAX_BILLSEC (68 years):
#: rate * (billable // 60) <= 1e11 * 3.6e7 = 3.6e18 < 9.2e18.
MONEY_MAX = 10**11  # micro-units: 100,000 currency units per minute or per call
STEP_MAX = 1_000_000  # seconds, for X and Y of billing steps
MAX_BILLSEC = 2**31 - 1 - STEP_MAX  # billable = billsec rounded up by < STEP_MAX: still int32

# ------------------------------------------------------------------ columns of row_data
ROW_FROM = 0  # epoch s the row starts (TIME_MIN: whenever its version is in force)
ROW_TO = 1  # epoch s the code closes, exclusive (TIME_MAX: never)
ROW_RATE = 2  # micro-units per minute
ROW_BASE60 = 3  # 60 * connect fee + first_rate * X: the fixed part of a price, in 1/60 micro
ROW_SAFE_REST = 4  # largest billable - X for which base60 + rate * (billable - X) fits int64
ROW_STEPS = 5  # steps X * 2**32 + Y
ROW_ROUND = 6  # 10 ** (6 - decimals) * 4 + rounding code
ROW_NODE = 7  # node id * 32 + prefix length (where a row that is not in force falls back)
ROW_COLUMNS = 8

# ------------------------------------------------------------------ columns of node_data
NODE_LEN = 0
NODE_PARENT = 1
NODE_ROW_LO = 2
NODE_ROW_HI = 3
NODE_COLUMNS = 4

#: the leaf entry of "no prefix" (leaves are -(code + 2), code 2*node or 2*row+1)
NO_NODE = -1

# ------------------------------------------------------------------ rounding codes
#: rater.money.Rounding codes, as the kernels see them (ROW_ROUND's low 2 bits)
ROUND_UP = 0
ROUND_HALF_UP = 1
ROUND_DOWN = 2

# ------------------------------------------------------------------ the kernel's arguments
#: CompiledTariffs attributes, in the order the kernels unpack their `tariffs` tuple
TARIFF_ARGS = (
    "table_ver_lo",
    "table_ver_hi",
    "ver_from",
    "ver_root",
    "trie",
    "node_data",
    "row_data",
)
