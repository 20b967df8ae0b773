"""`rater serve`: the authenticated HTTP service switches ask at call setup (docs/SERVE.md).

One module per concern:

- problems.py      the error answer `{"error": {"code", "field", "message"}}` and its codes
- bodies.py        reading a request body (size cap, slow-client timeout) and its JSON fields
- credentials.py   per-switch API tokens, reseller scopes and IP allow-lists in Redis
- gate.py          who is calling: token check (constant time), cache, 401 / 403
- domain.py        the account calls behind one small interface (Authorizer today)
- calls.py         POST /v1/authorize, .../renew, .../release
- cards.py         GET /v1/cards/{number}/balance
- accounts.py      GET /v1/accounts/{id}
- health.py        /healthz, /readyz, /metrics
- openapi.py       the OpenAPI document (checked in as docs/openapi.json)
- app.py           the Starlette application
- server.py        uvicorn: workers, timeouts, TLS, SIGTERM
"""
