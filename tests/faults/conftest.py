"""The fault matrix: every fault test's scenario, designed outcome and result, as one table.

Each test in this folder starts its docstring with ``<scenario> -> <designed outcome>``.
At the end of a run that collected any of them, the table is printed (and written to
``$LLMRELAY_FAULT_MATRIX`` when that is set), so CI's log and ``bench/fault_matrix.sh``
show what was tried and what held.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_rows: dict[str, tuple[str, str, str]] = {}


def _scenario(item: pytest.Item) -> tuple[str, str]:
    doc = getattr(getattr(item, "function", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else item.name
    scenario, sep, outcome = first.partition("->")
    scenario = scenario.strip()
    callspec = getattr(item, "callspec", None)
    if callspec is not None:  # parametrised: say which case
        scenario += f" [{callspec.id}]"
    return scenario, (outcome.strip() if sep else "")


def _is_fault(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).parent == _HERE


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _is_fault(item):
            scenario, outcome = _scenario(item)
            _rows[item.nodeid] = (scenario, outcome, "not run")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid not in _rows:
        return
    scenario, outcome, result = _rows[report.nodeid]
    if report.when == "call" or report.outcome != "passed":
        if report.passed:
            result = "held"
        elif report.skipped:
            result = "SKIPPED"
        else:
            result = "FAILED" if report.when == "call" else f"ERROR ({report.when})"
        _rows[report.nodeid] = (scenario, outcome, result)


def render_matrix() -> str:
    rows = sorted(_rows.items())
    width = max([len(s) for _, (s, _, _) in rows] + [8])
    owidth = max([len(o) for _, (_, o, _) in rows] + [16])
    lines = [
        f"{'scenario':<{width}} | {'designed outcome':<{owidth}} | result",
        f"{'-' * width}-+-{'-' * owidth}-+-------",
    ]
    lines += [f"{s:<{width}} | {o:<{owidth}} | {r}" for _, (s, o, r) in rows]
    return "\n".join(lines)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _rows:
        return
    table = render_matrix()
    terminalreporter.section("fault matrix")
    terminalreporter.write_line(table)
    target = os.environ.get("LLMRELAY_FAULT_MATRIX")
    if target:
        Path(target).write_text(table + "\n")
