"""`rater loadgen`: publish synthetic CDRs to the cdrs topic and write a reference manifest.

    rater loadgen --count 100000 --invalid-fraction 0.01 --duplicate-fraction 0.01 \\
        -o runs/manifest.json
    rater loadgen --duration 60 --rate 20000          # open loop at 20,000 msgs/s for a minute
    rater loadgen --count 1000 --use-existing         # call from the accounts already there

The first run creates a scenario (a wholesale deck from phonenumbers' prefixes, derived sell
tables, resellers, SIP customers, normal and disposable cards, switch settings) through the
account and tariff APIs and records it under --scenario; later runs reuse it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from rater.cli._output import emit_json, json_option
from rater.cli.grammar import Command, Deprecated, be_quiet, quiet
from rater.cli.main import settings_of
from rater.loadgen.generate import GenerationOptions
from rater.loadgen.manifest import Manifest
from rater.loadgen.population import Scenario
from rater.loadgen.runner import LoadgenOptions, new_run_id, run_async
from rater.loadgen.scenario import scenario_from_accounts, setup_scenario
from rater.money import from_micro

_FRACTION = click.FloatRange(0.0, 1.0)


@click.command("loadgen", cls=Command)
@click.option("--count", type=click.IntRange(min=1), help="Messages to publish.")
@click.option(
    "--duration", type=click.FloatRange(min=0, min_open=True), help="Seconds to publish for."
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="Messages per second (open loop); default: as fast as possible.",
)
@click.option(
    "--invalid-fraction",
    type=_FRACTION,
    default=0.0,
    show_default=True,
    help="Share of invalid records (the catalogue's kinds in turn).",
)
@click.option(
    "--duplicate-fraction",
    type=_FRACTION,
    default=0.0,
    show_default=True,
    help="Share of resent duplicates of earlier CDRs.",
)
@click.option(
    "--unanswered-fraction",
    type=_FRACTION,
    default=0.33,
    show_default=True,
    help="Share of valid calls not answered (billsec 0).",
)
@click.option(
    "--unrated-fraction",
    type=_FRACTION,
    default=0.002,
    show_default=True,
    help="Share of valid calls to numbers no tariff covers.",
)
@click.option(
    "--resellers",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Resellers of a new scenario.",
)
@click.option(
    "--customers",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Customers of a new scenario.",
)
@click.option(
    "--cards",
    type=click.IntRange(min=0),
    default=500,
    show_default=True,
    help="Calling cards of a new scenario.",
)
@click.option(
    "--scenario",
    "scenario_name",
    default="lg",
    show_default=True,
    help="Name (and id prefix) of the scenario to create or reuse.",
)
@click.option(
    "--use-existing",
    is_flag=True,
    help="Call from the resellers, customers and cards that already exist.",
)
@click.option(
    "--reseller",
    "reseller_ids",
    multiple=True,
    help="With --use-existing: only these resellers (repeatable).",
)
@click.option(
    "--buy-tariff",
    help="Existing tariff table for a new scenario's resellers (default: a phonenumbers deck).",
)
@click.option(
    "-o",
    "--output",
    "manifest_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write the run's manifest (JSON) to FILE [default: loadgen-RUN_ID.json].",
)
@click.option(
    "--manifest",
    "old_manifest",
    cls=Deprecated,
    new="-o/--output",
    dest="manifest_path",
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Random seed of the traffic (run ids stay unique).",
)
@click.option("--topic", help="Topic to publish to [default: the cdrs topic].")
@click.option(
    "--background-pricing",
    is_flag=True,
    help="Price the manifest in a second process while publishing "
    "(default: in this process once publishing is done).",
)
@click.option(
    "--no-progress",
    "old_no_progress",
    cls=Deprecated,
    new="`rater --quiet loadgen`",
    is_flag=True,
    apply=be_quiet,
)
@json_option
@click.pass_context
def loadgen(  # noqa: PLR0917 - click passes every option as an argument
    ctx: click.Context,
    count: int | None,
    duration: float | None,
    rate: float | None,
    invalid_fraction: float,
    duplicate_fraction: float,
    unanswered_fraction: float,
    unrated_fraction: float,
    resellers: int,
    customers: int,
    cards: int,
    scenario_name: str,
    use_existing: bool,
    reseller_ids: tuple[str, ...],
    buy_tariff: str | None,
    manifest_path: Path | None,
    seed: int,
    topic: str | None,
    background_pricing: bool,
    as_json: bool,
) -> None:
    """Publish realistic synthetic CDRs, with a manifest of their expected totals.

    Give --count, or --duration (with --rate: count = rate x duration; without: as many as fit).
    --json prints the manifest's totals as one object (money as decimal strings).
    """
    settings = settings_of(ctx)
    if count is None and duration is None:
        raise click.UsageError("give --count N or --duration SECONDS")
    if count is not None and duration is not None:
        raise click.UsageError("give either --count or --duration, not both")
    scenario: Scenario
    if use_existing:
        scenario = scenario_from_accounts(
            settings, name="existing", reseller_ids=reseller_ids or None
        )
    else:
        scenario = setup_scenario(
            settings,
            name=scenario_name,
            resellers=resellers,
            customers=customers,
            cards=cards,
            buy_tariff=buy_tariff,
        )
    run_id = new_run_id()
    options = LoadgenOptions(
        count=count,
        duration_s=duration,
        rate=rate,
        generation=GenerationOptions(
            seed=seed,
            invalid_fraction=invalid_fraction,
            duplicate_fraction=duplicate_fraction,
            unanswered_fraction=unanswered_fraction,
            unrated_fraction=unrated_fraction,
        ),
        manifest_path=manifest_path or Path(f"loadgen-{run_id}.json"),
        run_id=run_id,
        topic=topic,
        progress=not (quiet() or as_json),
        price_in_background=background_pricing,
    )
    manifest = asyncio.run(run_async(settings, options, scenario))
    if as_json:
        emit_json(_json(manifest, options.manifest_path))
    else:
        _summary(manifest, options.manifest_path)


def _json(manifest: Manifest, path: Path | None) -> dict[str, Any]:
    return {
        "run_id": manifest.run_id,
        "topic": manifest.topic,
        "published": manifest.published,
        "seconds": manifest.publish["seconds"],
        "valid": manifest.valid,
        "answered": manifest.answered,
        "unanswered": manifest.unanswered,
        "rated": manifest.rated,
        "unrated": manifest.unrated,
        "duplicates": manifest.duplicates,
        "invalid": dict(sorted(manifest.invalid.items())),
        "price": from_micro(manifest.price_micro),
        "cost": from_micro(manifest.cost_micro),
        "currency": manifest.currency,
        "output": None if path is None else str(path),
    }


def _summary(manifest: Manifest, path: Path | None) -> None:
    publish = manifest.publish
    target = publish.get("target_rate_per_s")
    click.echo(
        f"published {manifest.published:,} messages to {manifest.topic} "
        f"in {publish['seconds']:.2f} s: {publish['rate_per_s']:,.0f} msgs/s"
        + (
            f" (target {target:,.0f}/s)"
            if target
            else f" (sending alone: {publish['send_rate_per_s']:,.0f}/s)"
        )
    )
    invalid = ", ".join(f"{k} {v}" for k, v in sorted(manifest.invalid.items())) or "none"
    click.echo(
        f"valid {manifest.valid:,} (answered {manifest.answered:,}, "
        f"unanswered {manifest.unanswered:,}, rated {manifest.rated:,}, "
        f"unrated {manifest.unrated:,}); duplicates {manifest.duplicates:,}; "
        f"invalid {manifest.invalid_total:,} ({invalid})"
    )
    click.echo(
        f"expected: price {from_micro(manifest.price_micro)} {manifest.currency}, "
        f"cost {from_micro(manifest.cost_micro)} {manifest.currency} "
        f"(reference rater, {manifest.reference_calls:,} distinct pricings)"
    )
    if path is not None:
        click.echo(f"manifest: {path} (run {manifest.run_id})")
