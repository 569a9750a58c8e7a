"""Try it: one prediction through a predictor's V1 endpoint, and feedback to its ``POST /v1/feedback``.

The console sends its own request id (``x-request-id``), so the prediction id is known even from a predictor that
does not return one: it is the logged event's id, ``<request id>:<index>`` (``serving.eventlog``). A predictor that
returns ``id`` in a prediction (the feedback contract) is taken at its word.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx


class UpstreamError(Exception):
    """A predictor refused or failed a call: ``status`` is what the console answers (the predictor's 4xx as is,
    502 for its 5xx or no answer), ``message`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict):
            return str(body.get("error") or body.get("detail") or body)
    except ValueError:
        pass
    return response.text[:500]


@dataclass
class PredictorClient:
    """Calls one model's V1 and feedback endpoints on any predictor URL."""

    model_name: str
    timeout_s: float

    async def predict(self, url: str, text: str) -> dict[str, Any]:
        """``{label, probabilities, prediction_id, model_version}`` of one text."""
        request_id = f"console-{uuid.uuid4().hex}"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(f"{url}/v1/models/{self.model_name}:predict",
                                             json={"instances": [text]}, headers={"x-request-id": request_id})
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"the predictor at {url} did not answer: {type(e).__name__}: {e}") from e
        if response.status_code != 200:
            status = response.status_code if 400 <= response.status_code < 500 else 502
            raise UpstreamError(status, f"the predictor answered {response.status_code}: {_detail(response)}")
        body = response.json()
        prediction = body["predictions"][0]
        return {"label": prediction["label"], "probabilities": prediction["probabilities"],
                "prediction_id": str(prediction.get("id") or f"{request_id}:0"),
                "model_version": body.get("model_version")}

    async def feedback(self, url: str, prediction_id: str, label: str) -> dict[str, Any]:
        """Send ``{id, label, source: console}``; the predictor's answer."""
        item = {"id": prediction_id, "label": label, "source": "console"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(f"{url}/v1/feedback", json=[item])
        except httpx.HTTPError as e:
            raise UpstreamError(502, f"the predictor at {url} did not answer: {type(e).__name__}: {e}") from e
        if response.status_code == 404:
            raise UpstreamError(502, f"the predictor at {url} has no feedback endpoint (POST /v1/feedback: 404)")
        if response.status_code >= 300:
            status = response.status_code if 400 <= response.status_code < 500 else 502
            raise UpstreamError(status, f"the predictor refused the feedback ({response.status_code}): "
                                        f"{_detail(response)}")
        try:
            answer: dict[str, Any] = response.json() if response.content else {}
        except ValueError:
            answer = {}
        return {"accepted": True, "prediction_id": prediction_id, "label": label, "predictor": answer}
