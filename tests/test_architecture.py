"""The layout's promise (README, "Which package may import which"), checked on the import graph:
no two top-level packages of ``blueprints`` import each other, and ``core`` imports no feature."""
from __future__ import annotations

import grimp
import pytest

ROOT = "blueprints"


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph(ROOT)


def _packages(graph) -> list[str]:
    return sorted({module.split(".")[1] for module in graph.modules if module.count(".") >= 1})


def _imports(graph, importer: str, imported: str) -> list[str]:
    return [f'{found["importer"]} -> {found["imported"]} (line {found["line_number"]})'
            for found in graph.find_matching_direct_imports(
                import_expression=f"{ROOT}.{importer}.** -> {ROOT}.{imported}.**")
            + graph.find_matching_direct_imports(import_expression=f"{ROOT}.{importer} -> {ROOT}.{imported}.**")]


def test_no_two_top_level_packages_import_each_other(graph):
    packages = _packages(graph)
    both_ways = [
        (a, b, _imports(graph, a, b), _imports(graph, b, a))
        for i, a in enumerate(packages) for b in packages[i + 1:]
        if graph.direct_import_exists(importer=f"{ROOT}.{a}", imported=f"{ROOT}.{b}", as_packages=True)
        and graph.direct_import_exists(importer=f"{ROOT}.{b}", imported=f"{ROOT}.{a}", as_packages=True)
    ]
    assert both_ways == []


def test_core_imports_no_feature(graph):
    features = [p for p in _packages(graph) if p != "core" and graph.find_children(f"{ROOT}.{p}")]
    found = [line for feature in features for line in _imports(graph, "core", feature)]
    assert found == []


def test_the_check_sees_an_import_both_ways(graph):
    """The graph is real: booking imports catalog (one way), so the check above can fail."""
    assert graph.direct_import_exists(importer=f"{ROOT}.booking", imported=f"{ROOT}.catalog", as_packages=True)
    assert not graph.direct_import_exists(importer=f"{ROOT}.catalog", imported=f"{ROOT}.booking", as_packages=True)
