#!/usr/bin/env bash
# `make demo`: the main job on the local stack, printing real results.
# For now (pipeline not merged yet) it brings the stack up, applies the migrations and shows
# what runs; the pipeline issue replaces the part below "the job" with the real demo.
set -euo pipefail
cd "$(dirname "$0")/.."
rater=.venv/bin/rater

$rater stack up
echo
echo "== migrations"
$rater db migrate
$rater db list
echo
echo "== the job"
$rater stack status
