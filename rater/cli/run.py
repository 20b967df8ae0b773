"""`rater run [--workers N] [--until-idle SECONDS]`: the streaming rater workers."""

from __future__ import annotations

import sys

import click

from rater.cli.main import settings_of
from rater.pipeline.worker import WorkerFailed, WorkerSummary, run_workers


@click.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes in the consumer group [RATER_WORKERS].",
)
@click.option(
    "--until-idle",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="Exit cleanly (everything committed) after this many seconds without records.",
)
@click.option(
    "--batch",
    "batch_max_records",
    type=click.IntRange(1),
    default=None,
    help="Records per batch at most [RATER_BATCH_MAX_RECORDS].",
)
@click.pass_context
def run(
    ctx: click.Context, workers: int | None, until_idle: float | None, batch_max_records: int | None
) -> None:
    """Rate the cdrs topic: decode, rate, debit, store, commit, batch after batch.

    \b
    Workers join one consumer group and split the topic's partitions; Prometheus metrics are
    served on RATER_METRICS_PORT (+1 per further worker). On a terminal a live line shows the
    records rated, CDRs/s, the lag and the time left; otherwise a progress line is logged every
    RATER_PROGRESS_INTERVAL_S seconds.
    \b
    SIGTERM or Ctrl-C: each worker commits what is stored and leaves the group, within
    RATER_SHUTDOWN_TIMEOUT_S seconds. A worker that dies or stalls (lag and nothing committed
    for RATER_STALL_TIMEOUT_S while the services answer) is restarted; after
    RATER_RESTART_MAX failures in a row all stop. Exit status: 0 stopped or idle, 3 a lone
    worker stalled, 1 any other failure.
    """
    settings = settings_of(ctx).replace(workers=workers, batch_max_records=batch_max_records)
    try:
        summaries = run_workers(settings, settings.workers, until_idle, progress=True)
    except WorkerFailed as failure:
        click.secho(f"error: {failure}", fg="red", err=True)
        sys.exit(failure.exit_status)
    _print_summary(summaries)


def _print_summary(summaries: list[WorkerSummary]) -> None:
    records = sum(s.records for s in summaries)
    seconds = max((s.seconds for s in summaries), default=0.0)
    outcomes: dict[tuple[str, str], int] = {}
    for summary in summaries:
        for key, count in summary.outcomes.items():
            outcomes[key] = outcomes.get(key, 0) + count
    click.echo(f"records: {records} in {seconds:.1f} s by {len(summaries)} worker(s)")
    stages: dict[str, float] = {}
    for summary in summaries:
        for stage, spent in summary.stage_seconds.items():
            stages[stage] = stages.get(stage, 0.0) + spent
    busy_workers = [s for s in summaries if s.records]
    if busy_workers:
        # from the first record fetched to the last commit: warm-up, joins and idle time apart
        span = max(s.last_at for s in busy_workers) - min(s.first_at for s in busy_workers)
        busy = sum(stages.values()) or 1.0
        shares = ", ".join(f"{k} {v / busy:.0%}" for k, v in stages.items())
        click.echo(f"  {records / max(span, 1e-9):,.0f} records/s over {span:.1f} s of work; "
                   f"time per stage: {shares}")  # fmt: skip
    for (outcome, reason), count in sorted(outcomes.items()):
        label = f"{outcome} ({reason})" if reason else outcome
        click.echo(f"  {label:<48} {count:>10}")
