"""Synthetic CDR load with a reference manifest (`rater loadgen`).

Public API:
    setup_scenario(settings, ...) -> Scenario      accounts, tariffs and switches to call from
    scenario_from_accounts(settings, ...) -> Scenario   the same over accounts that exist
    run(settings, LoadgenOptions(...), scenario) -> Manifest   generate, publish, price
    run_async(...)                                    the same inside an event loop
    Manifest.read(path)                               a manifest written by a run
"""

from rater.loadgen.generate import GenerationOptions
from rater.loadgen.invalid import CATALOGUE, InvalidKind, diagnose
from rater.loadgen.manifest import Manifest, Totals
from rater.loadgen.numbers import DEFAULT_SWITCHES, SwitchProfile
from rater.loadgen.population import CustomerPlan, ResellerPlan, Scenario
from rater.loadgen.runner import LoadgenOptions, new_run_id, run, run_async
from rater.loadgen.scenario import (
    load_scenario,
    load_tariffs,
    scenario_from_accounts,
    setup_scenario,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_SWITCHES",
    "CustomerPlan",
    "GenerationOptions",
    "InvalidKind",
    "LoadgenOptions",
    "Manifest",
    "ResellerPlan",
    "Scenario",
    "SwitchProfile",
    "Totals",
    "diagnose",
    "load_scenario",
    "load_tariffs",
    "new_run_id",
    "run",
    "run_async",
    "scenario_from_accounts",
    "setup_scenario",
]
