"""Stacked composition of the K objective models, and the accelerated (bf16 / compiled /
CUDA-graphed) denoiser call with its fallbacks. Everything runs on the CPU; the CUDA-only
checks are skipped without a GPU."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tora.bench.speed import SpeedConfig, format_speed_table, run_speed_benchmark
from tora.cli.main import main
from tora.diffusion import NoiseSchedule, SamplerConfig, sample
from tora.diffusion.accel import AccelerationWarning, accelerate
from tora.diffusion.compose import ComposedDenoiser
from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.nn.denoisers import DenoiserConfig, build_denoiser

H, D = 4, 3
TOL = {"atol": 1e-5, "rtol": 1e-5}  # float32: stacked and sequential differ only in rounding
CUDA = torch.cuda.is_available()


def _models(k: int, kind: str = "mlp", hidden: int = 32, dropout: float = 0.0) -> list[nn.Module]:
    cfg = DenoiserConfig(
        kind=kind, hidden_dim=hidden, depth=2, heads=2, time_dim=8, dropout=dropout
    )
    return [build_denoiser(H, D, cfg).eval() for _ in range(k)]


def _inputs(batch: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(batch, H, D, generator=g), torch.randint(0, 100, (batch,), generator=g)


def _dirichlet(batch: int, k: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    w = -torch.log(torch.rand(batch, k, generator=g))
    return w / w.sum(1, keepdim=True)


class Wave(nn.Module):
    """No parameters: its behaviour lives in plain attributes, which stacking cannot swap."""

    def __init__(self, phase: float) -> None:
        super().__init__()
        self.phase, self.calls = phase, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.sin(x + self.phase)


# ------------------------------------------------------------------------------- stacked mode
@pytest.mark.parametrize("kind", ["mlp", "transformer"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_stacked_equals_sequential_per_row_weights(kind: str, k: int) -> None:
    models = _models(k, kind)
    x, t = _inputs()
    w = _dirichlet(x.shape[0], k)
    seq = ComposedDenoiser(models, mode="sequential")
    stk = ComposedDenoiser(models, mode="stacked")
    with torch.no_grad():
        torch.testing.assert_close(stk(x, t, w), seq(x, t, w), **TOL)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_stacked_one_hot_weight_reproduces_that_model(kind: str, k: int) -> None:
    models = _models(k, kind)
    x, t = _inputs()
    stk = ComposedDenoiser(models, mode="stacked")
    with torch.no_grad():
        for i, model in enumerate(models):
            w = torch.zeros(k)
            w[i] = 1.0
            torch.testing.assert_close(stk(x, t, w), model(x, t), **TOL)


def test_stacked_transformer_stays_batched_and_restores_fast_path() -> None:
    """No functorch per-model loop (it warns) and the global attention switch is restored."""
    stk = ComposedDenoiser(_models(2, "transformer"), mode="stacked")
    x, t = _inputs()
    before = torch.backends.mha.get_fastpath_enabled()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error")
        stk(x, t, [0.5, 0.5])
    assert torch.backends.mha.get_fastpath_enabled() == before


def test_stacked_matches_sequential_inside_the_sampler() -> None:
    models = _models(2)
    x, _ = _inputs()
    first, w = x[:, 0], _dirichlet(x.shape[0], 2)
    schedule, cfg = NoiseSchedule(50), SamplerConfig(steps=5)
    plans = []
    for mode in ("sequential", "stacked"):
        composed = ComposedDenoiser(models, mode=mode)  # type: ignore[arg-type]
        plans.append(
            sample(
                composed.bind(w), schedule, x.shape, first, cfg, torch.Generator().manual_seed(0)
            )
        )
    torch.testing.assert_close(plans[1], plans[0], atol=1e-4, rtol=1e-4)


def test_stacked_rejects_different_architectures() -> None:
    wide = _models(1, hidden=32) + _models(1, hidden=16)
    with pytest.raises(ShapeMismatchError, match="'model_0' and 'model_1' differ"):
        ComposedDenoiser(wide, mode="stacked")
    mixed = _models(1, "mlp") + _models(1, "transformer")
    with pytest.raises(ShapeMismatchError, match="one architecture"):
        ComposedDenoiser(mixed, ["a", "b"], mode="stacked")


def test_stacked_rejects_models_differing_only_in_settings() -> None:
    a, b = _models(2)
    for m in b.modules():  # same tensors, different LayerNorm eps: not stackable
        if isinstance(m, nn.LayerNorm):
            m.eps = 1e-3
    with pytest.raises(ShapeMismatchError, match="eps"):
        ComposedDenoiser([a, b], mode="stacked")


def test_stacked_rejects_parameterless_models() -> None:
    with pytest.raises(ShapeMismatchError, match="phase"):
        ComposedDenoiser([Wave(0.0), Wave(1.0)], mode="stacked")
    with pytest.raises(ShapeMismatchError, match="parameters and buffers"):
        ComposedDenoiser([Wave(0.0), Wave(0.0)], mode="stacked")


def test_auto_is_sequential_on_cpu_and_stacked_on_cuda() -> None:
    composed = ComposedDenoiser(_models(2))
    assert composed.mode == "auto"
    assert composed.execution_mode("cpu") == "sequential"
    assert composed.execution_mode("cuda") == "stacked"
    # Models that cannot be stacked: "auto" quietly stays sequential, even on CUDA.
    mixed = ComposedDenoiser(_models(1, hidden=32) + _models(1, hidden=16))
    assert mixed.execution_mode("cuda") == "sequential"
    assert ComposedDenoiser(_models(2), mode="stacked").execution_mode("cpu") == "stacked"
    assert ComposedDenoiser(_models(2), mode="sequential").execution_mode("cuda") == "sequential"


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="compose mode"):
        ComposedDenoiser(_models(1), mode="parallel")  # type: ignore[arg-type]


def test_refresh_picks_up_changed_models_and_to_restacks() -> None:
    models = _models(2)
    x, t = _inputs()
    w = torch.tensor([0.3, 0.7])
    seq = ComposedDenoiser(models, mode="sequential")
    stk = ComposedDenoiser(models, mode="stacked")
    with torch.no_grad():
        for p in models[1].parameters():
            p.add_(0.1)
        # Documented: stacked copies are made once; in-place changes need refresh().
        assert not torch.allclose(stk(x, t, w), seq(x, t, w), **TOL)
        stk.refresh()
        torch.testing.assert_close(stk(x, t, w), seq(x, t, w), **TOL)
        # .to() (here a dtype change) remakes the copies from the converted models.
        stk.double()
        out = stk(x.double(), t, w)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, seq(x.double(), t, w), **TOL)


def test_stacked_copies_stay_out_of_parameters_and_state_dict() -> None:
    models = _models(3)
    seq = ComposedDenoiser(models, mode="sequential")
    stk = ComposedDenoiser(models, mode="stacked")
    assert list(stk.state_dict()) == list(seq.state_dict())
    assert len(list(stk.parameters())) == len(list(seq.parameters()))


def test_stacked_refuses_autograd_and_sequential_allows_it() -> None:
    models = _models(2)
    x, t = _inputs()
    with pytest.raises(RuntimeError, match="gradients would not reach"):
        ComposedDenoiser(models, mode="stacked")(x, t, [0.5, 0.5])
    out = ComposedDenoiser(models, mode="sequential")(x, t, [0.5, 0.5])
    out.sum().backward()
    assert all(p.grad is not None for m in models for p in m.parameters())


def test_stacked_train_mode_draws_dropout_per_model() -> None:
    models = _models(2, dropout=0.5)
    stk = ComposedDenoiser(models, mode="stacked").train()
    x, t = _inputs()
    with torch.no_grad():
        out = stk(x, t, [0.5, 0.5])
        assert out.shape == x.shape and torch.isfinite(out).all()
        stk.eval()
        torch.testing.assert_close(
            stk(x, t, [0.5, 0.5]),
            ComposedDenoiser(models, mode="sequential").eval()(x, t, [0.5, 0.5]),
            **TOL,
        )


def test_sequential_can_evaluate_every_model() -> None:
    waves = [Wave(0.0), Wave(1.0)]
    composed = ComposedDenoiser(waves, mode="sequential")
    x, t = _inputs()
    w = torch.tensor([[1.0, 0.0]])
    composed(x, t, w)
    assert [m.calls for m in waves] == [1, 0]  # skipped: weight 0 on the whole batch
    torch.testing.assert_close(composed(x, t, w, skip_zero_weights=False), torch.sin(x))
    assert [m.calls for m in waves] == [2, 1]


def test_stacked_checks_weight_rows() -> None:
    x, t = _inputs(batch=4)
    with pytest.raises(InvalidWeightsError, match="weight rows"):
        ComposedDenoiser(_models(2), mode="stacked")(x, t, _dirichlet(3, 2))


# ------------------------------------------------------------------------------ accelerate
def _composed(mode: str = "stacked", k: int = 2) -> ComposedDenoiser:
    return ComposedDenoiser(_models(k), mode=mode)  # type: ignore[arg-type]


def _eager(
    composed: ComposedDenoiser, x: torch.Tensor, t: torch.Tensor, w: torch.Tensor
) -> torch.Tensor:
    with torch.no_grad():
        return composed(x, t, w, validate=False)


@pytest.mark.skipif(CUDA, reason="checks the fallback where CUDA is absent")
def test_cuda_graph_falls_back_to_eager_off_cuda() -> None:
    composed = _composed()
    x, t = _inputs()
    w = _dirichlet(x.shape[0], 2)
    with pytest.warns(AccelerationWarning, match="CUDA graphs need a CUDA device"):
        fast = accelerate(composed, compile="cuda_graph", device="cpu")
    assert (fast.precision, fast.compile) == ("fp32", "none")
    assert torch.equal(fast(x, t, w), _eager(composed, x, t, w))


def test_failed_compile_falls_back_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_compile(fn: Any, **_: Any) -> Any:
        def compiled(*args: Any) -> torch.Tensor:
            raise RuntimeError("backend compiler failed")

        return compiled

    monkeypatch.setattr(torch, "compile", broken_compile)
    composed = _composed("sequential")
    x, t = _inputs()
    w = _dirichlet(x.shape[0], 2)
    fast = accelerate(composed, compile="compile")
    assert fast.compile == "compile"  # torch.compile is lazy: failures show at the first call
    with pytest.warns(AccelerationWarning, match="torch.compile failed"):
        out = fast(x, t, w)
    assert fast.compile == "none"
    assert torch.equal(out, _eager(composed, x, t, w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once; later calls are quietly eager
        assert torch.equal(fast(x, t, w), out)


def test_compile_that_refuses_to_wrap_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def refusing(fn: Any, **_: Any) -> Any:
        raise RuntimeError("torch.compile is not supported on this Python")

    monkeypatch.setattr(torch, "compile", refusing)
    with pytest.warns(AccelerationWarning, match="not supported"):
        fast = accelerate(_composed(), compile="compile")
    assert fast.compile == "none"


def test_input_errors_are_not_mistaken_for_compile_failures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def passthrough(fn: Any, **_: Any) -> Any:
        return fn

    monkeypatch.setattr(torch, "compile", passthrough)
    fast = accelerate(_composed(), compile="compile")
    x, t = _inputs(batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InvalidWeightsError, match="weight rows"):
            fast(x, t, _dirichlet(3, 2))
    assert fast.compile == "compile"


def test_torch_compile_eager_backend_matches_eager() -> None:
    """The real dynamo trace of the stacked call (the "eager" backend skips code generation,
    which takes minutes on a small CPU)."""
    composed = _composed("stacked")
    x, t = _inputs()
    w = _dirichlet(x.shape[0], 2)
    fast = accelerate(composed, compile="compile", compile_options={"backend": "eager"})
    torch.testing.assert_close(fast(x, t, w), _eager(composed, x, t, w), **TOL)
    assert fast.compile == "compile"


def test_bf16_on_cpu_is_close_to_fp32() -> None:
    """bf16 keeps 8 significant bits: outputs of order 1 agree to a few 1e-2."""
    composed = _composed("stacked", k=3)
    x, t = _inputs()
    w = _dirichlet(x.shape[0], 3)
    fast = accelerate(composed, precision="bf16")
    assert fast.precision == "bf16"
    out = fast(x, t, w)
    assert out.dtype == torch.float32  # the sampler's arithmetic keeps the input's dtype
    torch.testing.assert_close(out, _eager(composed, x, t, w), atol=3e-2, rtol=3e-2)


def test_accelerate_takes_any_weighted_eps_callable() -> None:
    def eps(x: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.sin(x) * w[:, :1, None]

    x, t = _inputs()
    w = _dirichlet(x.shape[0], 2)
    assert torch.equal(accelerate(eps)(x, t, w), eps(x, t, w))


def test_accelerate_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="precision"):
        accelerate(_composed(), precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="compile mode"):
        accelerate(_composed(), compile="jit")  # type: ignore[arg-type]


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("mode", ["sequential", "stacked"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cuda_graph_matches_eager_and_recaptures_per_batch(mode: str, precision: str) -> None:
    composed = _composed(mode).cuda()
    fast = accelerate(composed, precision, "cuda_graph")  # type: ignore[arg-type]
    tol = TOL if precision == "fp32" else {"atol": 3e-2, "rtol": 3e-2}
    for batch in (1, 5, 1):
        x, t = (a.cuda() for a in _inputs(batch))
        w = _dirichlet(batch, 2).cuda()
        ref = _eager(composed, x, t, w)
        out = fast(x, t, w)
        torch.testing.assert_close(out, ref, **tol)
        x2 = x + 1.0  # replay reads the new inputs, and earlier results are not overwritten
        out2 = fast(x2, t, w)
        torch.testing.assert_close(out2, _eager(composed, x2, t, w), **tol)
        torch.testing.assert_close(out, ref, **tol)
    assert fast.compile == "cuda_graph"


# ---------------------------------------------------------------------------- bench speed
TINY_SPEED: dict[str, Any] = {
    "models": (1, 2),
    "batch_sizes": (1, 3),
    "repeats": 1,
    "warmup": 0,
    "device": "cpu",
    "denoiser": DenoiserConfig(hidden_dim=16, depth=1, time_dim=8),
    "sampler": SamplerConfig(steps=2),
}


def test_speed_rows_report_what_ran() -> None:
    config = SpeedConfig(**TINY_SPEED, compose="stacked", compile="cuda_graph")
    with pytest.warns(AccelerationWarning):  # TINY_SPEED runs on the CPU, even beside a GPU
        results = run_speed_benchmark(config)
    assert [(r["models"], r["batch"]) for r in results["rows"]] == [(1, 1), (1, 3), (2, 1), (2, 3)]
    assert {(r["compose"], r["precision"], r["compile"]) for r in results["rows"]} == {
        ("stacked", "fp32", "none")
    }
    assert "stacked / fp32" in format_speed_table(results)
    assert "sweep" not in results


def test_speed_sweep_hook_calls_the_timer() -> None:
    calls: list[dict[str, Any]] = []

    def fake_timer(env_id: str, policy: Any, **kwargs: Any) -> dict[str, Any]:
        obs = torch.zeros(kwargs["n_prefs"], 3).numpy()  # Cruise: 3-dim observations
        w = torch.full((kwargs["n_prefs"], kwargs["num_objectives"]), 0.5).numpy()
        actions = policy(obs, w)
        calls.append({"env": env_id, "actions": actions.shape, **kwargs})
        return {"wall_seconds": 1.5, "policy_seconds": 1.0, "env_seconds": 0.5}

    config = SpeedConfig(
        **TINY_SPEED, sweep=True, sweep_env="tora/Cruise-v0", sweep_preferences=4, sweep_steps=2
    )
    results = run_speed_benchmark(config, sweep_timer=fake_timer)
    assert calls == [
        {
            "env": "tora/Cruise-v0",
            "actions": (4, 1),
            "n_prefs": 4,
            "steps": 2,
            "workers": None,
            "num_objectives": 2,
        }
    ]
    assert results["sweep"]["wall_seconds"] == 1.5 and results["sweep"]["models"] == 2
    assert "1.50 s wall" in format_speed_table(results)


def test_cli_bench_speed_with_acceleration_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "speed.json"
    args = ["bench", "speed", "--device", "cpu", "--models", "1", "2", "--batch-sizes", "2"]
    args += ["--repeats", "1", "--warmup", "0", "--sampler-steps", "2"]
    args += ["--denoiser-hidden-dim", "16", "--denoiser-depth", "1", "--denoiser-time-dim", "8"]
    args += ["--compose", "stacked", "--precision", "bf16", "--out", str(out)]
    assert main(args) == 0
    assert "stacked / bf16 / none" in capsys.readouterr().out
    rows = json.loads(out.read_text())["rows"]
    assert [r["compose"] for r in rows] == ["stacked", "stacked"]
