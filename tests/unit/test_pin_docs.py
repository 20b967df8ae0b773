"""The README's guess budget is the one the settings give (rater/accounts/pins.py)."""

from __future__ import annotations

from rater.accounts.pins import guess_budget
from rater.settings import PROJECT_ROOT, Settings


def test_readme_states_the_guess_budget_of_the_default_settings() -> None:
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    first_day, in_all = guess_budget(Settings())
    assert f"at most {first_day} PINs in its first day and {in_all} in all" in readme
    settings = Settings()
    assert f"RATER_PIN_MAX_FAILURES={settings.pin_max_failures}" in readme
    assert f"RATER_PIN_LOCK_SCHEDULE_S={settings.pin_lock_schedule_s}" in readme
    assert f"at most {in_all / 10**settings.pin_length:.1%} per card" in readme
