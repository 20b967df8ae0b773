"""The reseller portal: `rater serve` answers it under /portal (docs/PORTAL.md).

A reseller logs in with its id and the password `rater reseller password ID` set, and works on
its own customers, cards and tariff tables only, through the same account API as the CLI
(rater/accounts/api.py `Accounts`, rater/tariffs/, rater/analytics/reports.py). Pages are
rendered on the server (Jinja2) and work without JavaScript; the stylesheet is in the package.

Modules: passwords.py (argon2 hashes), sessions.py (signed cookies, CSRF tokens), logins.py
(failed-login limits), scope.py (what one reseller may touch: anything else is 404),
census.py (card counts for coverage and alerts, off the request path), chart.py (SVG),
app.py (the Starlette application and its routes), pages/ (one module per page).
"""
