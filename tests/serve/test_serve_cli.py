"""``tora serve``: options are checked before the run is loaded or a port opened, and the
command serves the app it built with the token it was given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tora.cli.main import main


@pytest.fixture
def uvicorn_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace uvicorn.run: record what it was given instead of listening on a port."""
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    return seen


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-batch", "0"], "--max-batch must be at least 1"),
        (["--batch-wait-ms", "-1"], "--batch-wait-ms must be non-negative"),
        (["--port", "70000"], "--port must lie in [0, 65535]"),
        (["--token", ""], "--token is empty"),
        (["--objectives", "speed,comfort"], "no objective model 'comfort'"),
        (["--objectives", "speed,,energy"], "--objectives has an empty item"),
        (["--objectives", "speed,speed"], "--objectives names speed more than once"),
    ],
)
def test_bad_options_are_refused_before_serving(
    trained_run: Path,
    uvicorn_run: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    assert main(["serve", str(trained_run), *options]) == 2
    assert message in capsys.readouterr().err
    assert not uvicorn_run


def test_a_missing_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err


@pytest.mark.parametrize("batching_off", [["--no-batching"], ["--batch-wait-ms", "0"]])
def test_serves_the_chosen_objectives_with_the_token_from_the_environment(
    trained_run: Path,
    uvicorn_run: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    batching_off: list[str],
) -> None:
    monkeypatch.setenv("TORA_SERVE_TOKEN", "from-env")
    options = ["--objectives", "energy", *batching_off, "--port", "8123", "--device", "cpu"]
    assert main(["serve", str(trained_run), *options]) == 0
    out = capsys.readouterr().out
    assert "objectives energy" in out and "batching off" in out
    assert (uvicorn_run["host"], uvicorn_run["port"]) == ("127.0.0.1", 8123)
    with TestClient(uvicorn_run["app"]) as client:
        body = {"obs": [0.1, 0.5, -0.2], "weights": [1.0]}
        assert client.post("/act", json=body).status_code == 401
        answer = client.post("/act", json=body, headers={"Authorization": "Bearer from-env"})
        assert answer.status_code == 200 and len(answer.json()["actions"]) == 1
        assert client.get("/health").json()["batching"] is False
