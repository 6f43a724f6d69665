"""The publishing path: the Pages workflow builds the book with the README's build command and deploys it, and
_config.yml's repository / launch / download buttons are configured consistently with the README."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def readme_build_command() -> str:
    """The command the README's first bash block gives for building the book (`make book ...  # ...`)."""
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    assert blocks, "README has no bash block"
    for line in blocks[0].splitlines():
        command = line.split("#", 1)[0].strip()
        if "book" in command and "test" not in command:
            return command
    raise AssertionError("README's first bash block gives no book build command")


def steps(job: dict) -> list[dict]:
    return job["steps"]


def test_workflow_is_a_valid_actions_workflow(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert triggers and "push" in triggers and "workflow_dispatch" in triggers, triggers
    assert workflow["jobs"], "no jobs"
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("runs-on"), str), f"job {name}: runs-on"
        assert job.get("steps"), f"job {name}: no steps"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"job {name}: a step needs exactly one of uses/run: {step}"
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), f"unpinned or malformed action {step['uses']}"
        for need in [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", []):
            assert need in workflow["jobs"], f"job {name} needs unknown job {need}"


def test_build_job_runs_the_readme_build_command_and_uploads_the_html(workflow):
    command = readme_build_command()
    assert command == "make book"
    build = workflow["jobs"]["build"]
    runs = [s["run"].strip() for s in steps(build) if "run" in s]
    assert command in runs, f"the build job never runs {command!r}: {runs}"
    assert build["env"]["CSIL_PREVIEW"] == "1"
    uses = [s["uses"] for s in steps(build) if "uses" in s]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = next(s for s in steps(build) if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    # where `make book` writes the HTML: jupyter-book's default output under the book root (the repository root)
    assert "jupyter-book build ." in (ROOT / "Makefile").read_text()
    assert upload["with"]["path"] == "_build/html"
    # the build order: checkout first, upload after the build
    order = [s.get("run", s.get("uses")).strip() for s in steps(build)]
    assert order.index(command) < order.index(upload["uses"])


def test_deploy_job_uses_the_pages_actions(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in steps(deploy)] == ["actions/deploy-pages"]
    assert "deployment.outputs.page_url" in deploy["environment"]["url"]


def test_book_buttons_point_at_one_repository_named_in_the_readme():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = cfg["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    assert cfg["html"]["use_repository_button"] and cfg["html"]["use_download_button"]
    assert cfg["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    readme = (ROOT / "README.md").read_text()
    assert url in readme and "placeholder" in readme  # the README says it must be set to the real repository
    owner, repo = url.rsplit("/", 2)[1:]
    assert f"https://{owner}.github.io/{repo}/" in readme  # where the rendered book lives
    binder = (ROOT / "binder" / "requirements.txt").read_text()
    assert "-e .[book" in binder  # Binder installs the library and jupytext (to open the .md chapters)
