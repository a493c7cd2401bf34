"""A small client for the Countersign agent API (standard library only, no Django).

Install it in an agent's environment with `pip install ./clients/python` (from a Countersign checkout).

client = Client("http://127.0.0.1:8000", token="cs_...")
change = client.propose(workflow="ticket-triage", run="r-118", operation_id="t-42-tag",
                        record_type="ticket", records=[{"id": 42, "expected": {"tags": ""}}],
                        values={"tags": "billing"}, risk=0.1, confidence=0.9, reasoning="...")
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    """The API refused the request; `status` and `detail` say why."""

    def __init__(self, status: int, detail: Any):
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


class Client:
    def __init__(self, base_url: str, *, token: str, timeout: float = 30):
        self.base_url = base_url.rstrip("/") + "/api/v1"
        self.token = token
        self.timeout = timeout

    def propose(self, *, workflow: str, run: str, **change: Any) -> dict:
        """Propose one change; returns it (with its status and why). While its workflow is paused the
        change is recorded and held (HTTP 202): `status` is "held" and `message` says by whom, since
        when and why; nothing needs sending again, it is routed again when the workflow is resumed."""
        return self._request("POST", "/changes", {"workflow": workflow, "run": run, **change})

    def propose_batch(self, *, workflow: str, run: str, changes: list[dict]) -> dict:
        """Propose up to 1,000 changes at once; all are stored or none. `message` is set (HTTP 202)
        when some are held because the workflow is paused."""
        return self._request("POST", "/changes/batch", {"workflow": workflow, "run": run, "changes": changes})

    def change(self, change_id: int) -> dict:
        return self._request("GET", f"/changes/{change_id}")

    def run(self, run_id: int) -> dict:
        return self._request("GET", f"/runs/{run_id}")

    def register_callback(self, url: str) -> str:
        """Have each outcome of its changes POSTed to `url`; returns the signing secret (shown only now: keep it)."""
        return self._request("PUT", "/callback", {"url": url})["secret"]

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            # Every 2xx is an answer (201 stored, 200 stored before, 202 stored and held by a pause);
            # urllib raises HTTPError only for the others.
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail = json.loads(raw).get("detail")
            except ValueError:
                detail = raw.decode(errors="replace")
            raise ApiError(exc.code, detail) from None


def verify_signature(secret: str, body: bytes, signature: str) -> bool:
    """Check a callback: `signature` is its X-Countersign-Signature header, `body` the raw request body."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)
