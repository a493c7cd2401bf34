"""The agent-facing side: what agents send to Countersign and what it sends back.

- `api` — the HTTP API under /api/v1/ (django-ninja): runs, changes, decisions, agents' callbacks.
- `errors` — the API's one 4xx shape and strict JSON body reading.
- `intake` — checking and storing the changes an agent proposes (idempotent by operation id), then routing them.
- `callbacks` — signed decision and outcome callbacks to an agent's URL, with retries.
- `outbound` — where a callback may go: public addresses only (SSRF guard).

The Python client agents use lives outside the server, in `clients/python/`.
"""
