#!/usr/bin/env bash
# `make demo`: the main job on the local stack, printing real results (rater/demo.py):
# stack up, a buy tariff imported and sell tables derived, a reseller with customers and cards
# made through the account API, DEMO_COUNT CDRs (default 1,000,000; some invalid, some resent)
# published by the load generator, rated by the workers, and the totals printed beside the
# load generator's manifest, with balances, outcomes by reason and a reconciliation.
# Its data stays apart (Redis database 15, ClickHouse database `demo`, topics cdrs-demo-*) and
# each run replaces the previous one's.
#   DEMO_COUNT=100000 make demo      a smaller run;  DEMO_WORKERS=1 for one worker process
#   bash scripts/demo.sh --clean     remove the demo's data from the stack
set -euo pipefail
cd "$(dirname "$0")/.."

.venv/bin/rater stack up
exec .venv/bin/python -m rater.demo --count "${DEMO_COUNT:-1000000}" --workers "${DEMO_WORKERS:-2}" "$@"
