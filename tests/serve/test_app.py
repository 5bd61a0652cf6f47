"""``tora serve``'s HTTP app on a tiny trained run: answers equal the Python API's, concurrent
requests are batched without mixing rows, bad requests get the Python API's message and the
server keeps answering, the token and size limits hold, reloads swap agents safely."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tora.errors import ConfigError
from tora.evaluate.rollout import row_seeds
from tora.planning.agent import Agent
from tora.serve.app import create_app
from tora.serve.config import ServeConfig
from tora.serve.payload import ACT_FIELDS
from tora.serve.service import PolicyService

OBS = [0.1, 0.5, -0.2]
LONG_WAIT_MS = 30_000.0
"""A batch wait that only max_batch ever cuts short: what a test asserts about batches then
does not depend on timing."""


@contextmanager
def serving(run: Path, token: str | None = None, **config: Any) -> Iterator[TestClient]:
    settings = ServeConfig(device="cpu", **config)
    service = PolicyService.from_config(run, settings)
    app = create_app(service, settings.max_body_bytes, token)
    with TestClient(app) as client:  # runs the lifespan: the batcher's task and thread
        yield client


def alone(run: Path, obs: Any, weights: Any, seed: int) -> np.ndarray:
    """What the Python API answers for a request with this seed (see tora.serve.service)."""
    agent = Agent.load(run, device="cpu")
    agent.seed_rows(row_seeds(seed, np.atleast_2d(obs).shape[0], 1))
    return agent.act(np.asarray(obs, dtype=np.float32), weights)


def act(client: TestClient, body: dict[str, Any], **kw: Any) -> tuple[int, Any]:
    response = client.post("/act", json=body, **kw)
    return response.status_code, response.json()


def test_one_observation_equals_the_python_api(trained_run: Path) -> None:
    with serving(trained_run) as client:
        code, answer = act(client, {"obs": OBS, "weights": [0.3, 0.7], "seed": 7})
        assert code == 200
        # One row alone in both: the same computation, so the same float32 bits.
        np.testing.assert_array_equal(
            np.float32(answer["actions"]), alone(trained_run, OBS, [0.3, 0.7], 7)
        )
        by_name = act(client, {"obs": OBS, "weights": {"energy": 0.7, "speed": 0.3}, "seed": 7})
        assert by_name == (200, answer)
        objectives = client.get("/objectives").json()
        assert objectives["objectives"] == ["speed", "energy"]
        assert objectives["directions"] == ["maximize", "maximize"]
        assert (objectives["obs_dim"], objectives["act_dim"]) == (3, 1)


def test_concurrent_requests_share_one_agent_call_and_get_their_own_rows(
    trained_run: Path,
) -> None:
    rng = np.random.default_rng(0)
    requests = []
    for i, rows in enumerate([1, 2, 3, 1, 2, 1, 3, 2]):
        obs = rng.normal(size=(rows, 3)).round(3).tolist()
        w = rng.dirichlet([1.0, 1.0], size=rows)
        w[:, 1] = 1.0 - w[:, 0]  # exact sums after rounding, as a client would send
        requests.append({"obs": obs, "weights": w.tolist(), "seed": 100 + i})
    total = sum(len(r["obs"]) for r in requests)
    with serving(trained_run, batch_wait_ms=LONG_WAIT_MS, max_batch=total) as client:
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            answers = list(pool.map(lambda body: act(client, body), requests))
        # Every request arrived before the batch filled up: one agent call for all of them.
        assert client.get("/health").json()["agent_calls"] == 1
    for body, (code, answer) in zip(requests, answers, strict=True):
        assert code == 200
        expected = alone(trained_run, body["obs"], body["weights"], body["seed"])
        # Batched matrix products round differently from one-row ones (float32, ~1e-7 per
        # step); a row answered with another row's noise or weights differs by far more.
        np.testing.assert_allclose(answer["actions"], expected, atol=1e-4)


def test_without_batching_every_request_is_one_agent_call(trained_run: Path) -> None:
    bodies = [{"obs": [OBS, OBS], "weights": [1.0, 0.0], "seed": s} for s in (1, 2, 3)]
    with serving(trained_run, batching=False) as client:
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(lambda body: act(client, body), bodies))
        health = client.get("/health").json()
        assert (health["batching"], health["agent_calls"]) == (False, 3)
    for body, (code, answer) in zip(bodies, answers, strict=True):
        assert code == 200 and np.shape(answer["actions"]) == (2, 1)
        np.testing.assert_array_equal(
            np.float32(answer["actions"]), alone(trained_run, body["obs"], [1.0, 0.0], body["seed"])
        )


def test_requests_without_a_seed_are_fresh_samples_repeated_by_a_fresh_server(
    trained_run: Path,
) -> None:
    body = {"obs": [OBS] * 4, "weights": [0.5, 0.5]}
    with serving(trained_run, seed=3) as client:
        first, second = act(client, body)[1], act(client, body)[1]
    with serving(trained_run, seed=3) as client:
        again = act(client, body)[1]
    assert first == again and first != second


@pytest.mark.parametrize(
    ("obs", "weights"),
    [
        ([0.1, 0.5], [0.3, 0.7]),  # observation of the wrong size
        ([[[0.1, 0.5, -0.2]]], [0.3, 0.7]),  # observations of three axes
        ([0.1, float("inf"), 0.2], [0.3, 0.7]),  # inf observation
        (OBS, [-0.5, 1.5]),  # negative weight
        (OBS, [0.3, 0.6]),  # not summing to 1
        (OBS, [float("nan"), 1.0]),  # NaN
        (OBS, [1.0]),  # one weight for two objectives
        (OBS, ["a", "b"]),  # not numbers
        ([OBS, OBS, OBS], [[0.5, 0.5], [1.0, 0.0]]),  # weight rows for neither 1 nor B obs
    ],
)
def test_bad_inputs_get_the_python_api_message(trained_run: Path, obs: Any, weights: Any) -> None:
    agent = Agent.load(trained_run, device="cpu")
    with pytest.raises(ValueError) as raised:  # every ToraError of bad inputs is a ValueError
        agent.act(obs, weights)
    with serving(trained_run) as client:
        # Written by Python's json, so NaN and inf arrive as such (JSON has neither; Python
        # clients send them anyway, and the server reads them).
        response = client.post("/act", content=json.dumps({"obs": obs, "weights": weights}))
        assert response.status_code == 422
        assert response.json() == {
            "detail": str(raised.value),
            "error": type(raised.value).__name__,
        }
        assert act(client, {"obs": OBS, "weights": [0.5, 0.5]})[0] == 200  # still serving


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{obs: [1, 2, 3]}", 400, "not valid JSON"),
        (b"[" * 50_000, 400, "not valid JSON"),  # nested past the parser's recursion limit
        (b"[0.1, 0.5, -0.2]", 422, 'must be a JSON object {"obs": ..., "weights": ...}'),
        (b'{"obs": [0.1, 0.5, -0.2]}', 422, "the request has no 'weights'"),
        (b'{"obs": [1, 2, 3], "weight": [1, 0]}', 422, "unknown field(s) 'weight'"),
        (b'{"obs": "0.1 0.5 -0.2", "weights": [1, 0]}', 422, '"obs" must be one observation'),
        (b'{"obs": [[1, 2, 3], [1]], "weights": [1, 0]}', 422, '"obs" must be one observation'),
        (b'{"obs": [1, 2, 3], "weights": {"comfort": 1}}', 422, "no objective model 'comfort'"),
        (b'{"obs": [1, 2, 3], "weights": [1, 0], "seed": -1}', 422, "non-negative integer"),
        (b'{"obs": [1, 2, 3], "weights": [1, 0], "seed": 1.5}', 422, "non-negative integer"),
    ],
)
def test_bodies_only_json_can_get_wrong_are_refused_clearly(
    trained_run: Path, body: bytes, status: int, message: str
) -> None:
    with serving(trained_run) as client:
        response = client.post("/act", content=body)
        assert response.status_code == status
        assert message in response.json()["detail"]
        assert act(client, {"obs": OBS, "weights": [0.5, 0.5]})[0] == 200  # still serving


def test_a_token_guards_everything_but_health_and_the_docs(trained_run: Path) -> None:
    body = {"obs": OBS, "weights": [0.5, 0.5]}
    with serving(trained_run, token="s3cret") as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            code, answer = act(client, body, headers=headers)
            assert code == 401 and "Authorization: Bearer TOKEN" in answer["detail"]
            assert answer["error"] == "Unauthorized"
            assert client.get("/objectives", headers=headers).status_code == 401
            assert client.post("/reload", headers=headers).status_code == 401
        assert act(client, body, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert client.get("/health").status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_the_openapi_schema_documents_every_route_and_the_act_body(trained_run: Path) -> None:
    with serving(trained_run, token="s3cret") as client:
        schema = client.get("/openapi.json").json()
        assert {"/act", "/objectives", "/reload", "/health"} <= set(schema["paths"])
        body = schema["paths"]["/act"]["post"]["requestBody"]["content"]["application/json"]
        assert set(body["schema"]["properties"]) == set(ACT_FIELDS)  # what the parser takes
        assert "HTTPBearer" in schema["components"]["securitySchemes"]  # /docs can send it
        assert client.get("/docs").status_code == 200


def test_bodies_over_the_limit_get_413(trained_run: Path) -> None:
    huge = json.dumps({"obs": [OBS] * 200, "weights": [0.5, 0.5]}).encode()
    with serving(trained_run, max_body_bytes=1000) as client:
        # Refused on its declared length, and (chunked, no length declared) while read.
        declared = client.post("/act", content=huge)
        chunked = client.post("/act", content=(huge[i : i + 100] for i in range(0, len(huge), 100)))
        for response in (declared, chunked):
            assert response.status_code == 413
            assert "over the server's limit of 1,000 bytes" in response.json()["detail"]
        assert act(client, {"obs": OBS, "weights": [0.5, 0.5]})[0] == 200


def test_reload_picks_up_a_new_objective_and_a_failed_one_keeps_the_old_agent(
    trained_run: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    energy = tmp_path / "energy"
    shutil.move(run / "objectives" / "energy", energy)
    with serving(run) as client:
        assert client.get("/objectives").json()["objectives"] == ["speed"]
        assert act(client, {"obs": OBS, "weights": [1.0]})[0] == 200

        shutil.copytree(energy, run / "objectives" / "energy")  # as `tora finetune` adds it
        response = client.post("/reload")
        assert response.status_code == 200
        assert response.json()["previous_objectives"] == ["speed"]
        assert response.json()["objectives"] == ["speed", "energy"]
        body = {"obs": OBS, "weights": [0.3, 0.7], "seed": 5}
        assert np.float32(act(client, body)[1]["actions"]) == pytest.approx(
            alone(run, OBS, [0.3, 0.7], 5)
        )

        # An objective model fine-tuned from another reference: Agent.load refuses it.
        config = run / "objectives" / "energy" / "config.json"
        doc = json.loads(config.read_text())
        config.write_text(json.dumps({**doc, "reference_sha256": "0" * 64}))
        response = client.post("/reload")
        assert response.status_code == 409
        detail = response.json()["detail"]
        assert "still serving the agent loaded before (speed, energy)" in detail
        assert "fine-tuned from a different reference planner" in detail
        assert client.get("/objectives").json()["objectives"] == ["speed", "energy"]
        assert act(client, body)[0] == 200
        assert client.get("/health").json()["reloads"] == 1


def test_the_readme_curl_example_is_a_request_the_server_answers(trained_run: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    bodies = re.findall(r"curl -s localhost:8000/act .*?-d '(.*?)'", readme, flags=re.S)
    assert bodies, "README lost its curl example"
    with serving(trained_run, token="change-me") as client:
        headers = {"Authorization": "Bearer change-me"}
        code, answer = act(client, json.loads(bodies[0]), headers=headers)
        assert code == 200 and np.shape(answer["actions"]) == (1,)


@pytest.mark.parametrize(
    ("objectives", "message"),
    [
        ("speed,speed", "--objectives names speed more than once"),
        ("speed,,energy", "--objectives has an empty item"),
        ("  ", "--objectives is empty"),
    ],
)
def test_objectives_option_is_parsed_as_every_command_parses_it(
    objectives: str, message: str
) -> None:
    """The server's --objectives goes through the same parser as the CLI's options."""
    with pytest.raises(ConfigError, match=message):
        ServeConfig(objectives=objectives)
    assert ServeConfig(objectives=" speed , energy ").objective_names == ["speed", "energy"]
