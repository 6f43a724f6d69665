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
            assert ("uses" in step) != ("run" in step), f"job {name}: a step needs one of uses/run: {step}"
            if "uses" in step:
                action = step["uses"]
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", action), f"unpinned or malformed action {action}"
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
    # where `make book` writes the HTML: jupyter-book's default under the book root (the repository root)
    makefile = (ROOT / "Makefile").read_text()
    assert "BOOK_ROOT ?= ." in makefile and "jupyter-book build $(BOOK_ROOT)" in makefile
    assert "scripts/check_book_build.py $(BOOK_ROOT)" in makefile  # a chapter that raised fails the job
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


def test_colab_button_opens_the_published_notebook():
    from csil_lite.sphinx_launch import _retarget, colab_url

    md = "https://colab.research.google.com/github/csil-lite/csil_lite/blob/main/book/07_manipulation.md"
    assert colab_url(md, "colab") == (
        "https://colab.research.google.com/github/csil-lite/csil_lite/blob/colab/book/07_manipulation.ipynb")
    binder = "https://mybinder.org/v2/gh/csil-lite/csil_lite/main?urlpath=lab/tree/book/07_manipulation.md"
    assert colab_url(binder, "colab") == binder
    launch = [{"text": "Binder", "url": binder}, {"text": "Colab", "url": md}]
    buttons = [{"type": "group", "buttons": launch}]
    _retarget(buttons, "colab")
    assert buttons[0]["buttons"][0]["url"] == binder
    assert buttons[0]["buttons"][1]["url"].endswith("/blob/colab/book/07_manipulation.ipynb")
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert "csil_lite.sphinx_launch" in cfg["sphinx"]["extra_extensions"]
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_colab_notebooks_take_the_build_outputs_and_put_a_setup_cell_in_front(tmp_path):
    import subprocess
    import sys

    import jupytext
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    book = tmp_path / "book"
    book.mkdir()
    chapter = ("---\nkernelspec:\n  display_name: Python 3\n  language: python\n  name: python3\n---\n\n"
               "```{code-cell} ipython3\n:tags: [parameters]\nPREVIEW = True\n```\n\n# 7. Title\n\n"
               "```{code-cell} ipython3\nprint(1)\n```\n")
    (book / "07_manipulation.md").write_text(chapter)
    (book / "intro.md").write_text("# Intro\n")  # not a notebook chapter: skipped
    # what the book build leaves in its execution cache: the chapter with its outputs
    executed = jupytext.reads(chapter, fmt="md:myst")
    executed.cells[-1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    cache_dir = tmp_path / "cache"
    bundle = CacheBundleIn(executed, "07_manipulation.md")
    get_cache(cache_dir).cache_notebook_bundle(bundle, check_validity=False)

    out = tmp_path / "colab" / "book"
    script = ROOT / "scripts" / "colab_notebooks.py"

    def run(*extra):
        command = [sys.executable, str(script), str(book), str(out), "--repo", "https://github.com/o/r",
                   "--ref", "abc123", *extra]
        return subprocess.run(command, capture_output=True, text=True)

    done = run("--cache", str(cache_dir))
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["07_manipulation.ipynb"]
    nb = nbformat.read(out / "07_manipulation.ipynb", as_version=4)
    nbformat.validate(nb)
    setup, params, _title, printed = nb.cells
    assert setup.metadata["tags"] == ["colab-setup"] and '"google.colab" in sys.modules' in setup.source
    assert "https://github.com/o/r" in setup.source and "abc123" in setup.source
    compile(setup.source, "setup", "exec")  # plain Python: runs in any kernel, does nothing outside Colab
    assert params.metadata["tags"] == ["parameters"] and printed.outputs[0]["text"] == "1\n"

    (book / "08_new.md").write_text(chapter.replace("print(1)", "print(2)"))  # never built: refused by name
    refused = run("--cache", str(cache_dir))
    assert refused.returncode == 2 and "08_new.md has no executed version" in refused.stderr
    missing = run("--cache", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "--cache" in missing.stderr


def _load_colab_script():
    import runpy

    return runpy.run_path(str(ROOT / "scripts" / "colab_notebooks.py"), run_name="colab_notebooks")


def test_colab_setup_cell_is_added_once():
    import nbformat

    colab_notebook = _load_colab_script()["colab_notebook"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    twice = colab_notebook(colab_notebook(nb, "https://github.com/o/r", "a"), "https://github.com/o/r", "b")
    assert len(twice.cells) == 2 and "b" in twice.cells[0].source and twice.cells[1].source == "x = 1"
    assert len(nb.cells) == 1  # the input is not modified


def test_binder_opens_chapters_as_notebooks(tmp_path):
    """Binder's postBuild makes jupytext's notebook view the default for .md (and MyST) files, so a launch button
    opens the chapter as a notebook, not in the text editor."""
    import json
    import os
    import subprocess

    post = ROOT / "binder" / "postBuild"
    assert post.is_file() and os.access(post, os.X_OK), "binder/postBuild missing or not executable"
    subprocess.run(["bash", str(post)], check=True, env={**os.environ, "HOME": str(tmp_path)})
    cfg = json.loads((tmp_path / ".jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    viewers = cfg["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    assert "jupytext" in (ROOT / "pyproject.toml").read_text()  # the viewer comes with the book extra
    assert ".[book" in (ROOT / "binder" / "requirements.txt").read_text()
