"""The layout's arrows (DESIGN.md; the contracts in pyproject.toml's [tool.importlinter]) hold
for the code as it is, and each contract really catches the import it exists to forbid."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter import api
from importlinter.cli import lint_imports
from importlinter.configuration import configure
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
CONTRACT_TYPES = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}


def _broken_contracts(extra_import: tuple[str, str] | None = None) -> list[str]:
    """Names of the pyproject's contracts that the code breaks, with ``extra_import`` (importer,
    imported) added to its import graph."""
    configure()
    config = api.read_configuration(str(PYPROJECT))
    graph = grimp.build_graph("tora", cache_dir=None)
    if extra_import is not None:
        graph.add_import(importer=extra_import[0], imported=extra_import[1])
    broken = []
    for options in config["contracts_options"]:
        contract = CONTRACT_TYPES[options["type"]](
            name=options["name"],
            session_options=config["session_options"],
            contract_options={k: v for k, v in options.items() if k not in ("name", "type", "id")},
        )
        if not contract.check(graph, verbose=False).kept:
            broken.append(options["name"])
    return broken


def test_the_code_keeps_every_contract(capsys: pytest.CaptureFixture[str]) -> None:
    # lint-imports itself, so a failure prints the offending import chains.
    status = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert status == 0, capsys.readouterr().out


LAYERS = "Packages are layered: each imports only from the layers below it"
NO_TRAIN = "Evaluation never imports training: metrics and reports work on any policy's results"
PURE_NN = "Networks are pure: nn imports no training, environments, data or files"
NO_LOOPS = "No loops between the modules of any package"


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        # a network that reaches into training (also a loop: train imports nn)
        ("tora.nn.layers", "tora.train.loop", {LAYERS, PURE_NN, NO_LOOPS}),
        # a metric that reaches into training: the layers allow evaluate -> train, this does not
        ("tora.evaluate.pareto", "tora.train.loop", {NO_TRAIN}),
        # a file loop inside one package, which the layers cannot see
        ("tora.bench.config", "tora.bench.suite", {NO_LOOPS}),
        # anything importing the CLI (and through it, indirectly, evaluate reaches train)
        ("tora.data.trajectories", "tora.cli.main", {LAYERS, NO_TRAIN, NO_LOOPS}),
        # the loop this layout removed: the text env importing the text policies' metrics
        ("tora.envs.text.env", "tora.evaluate.text", {LAYERS, NO_LOOPS}),
    ],
)
def test_each_contract_catches_what_it_forbids(
    importer: str, imported: str, expected: set[str]
) -> None:
    assert _broken_contracts() == []
    assert set(_broken_contracts((importer, imported))) == expected
