"""Chapter 3's slider (csil_lite.book): an ipywidgets control with a live front end, pre-rendered HTML
otherwise, and headless execution that never waits on widget messages."""

import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

from csil_lite import book  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _recording_draw(calls):
    def draw(i):
        calls.append(i)
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.plot([0, 1], [0, i])
        ax.set_title(f"config {i}")
        return fig

    return draw


def test_widget_slider_callback_redraws_the_figure():
    import ipywidgets

    calls = []
    control = book.widget_slider(_recording_draw(calls), ["a", "b", "c"], description="cfg")
    assert isinstance(control.slider, ipywidgets.IntSlider) and isinstance(control.image, ipywidgets.Image)
    assert (control.slider.min, control.slider.max, control.slider.value) == (0, 2, 0)
    assert control.slider.description == "cfg" and control.label.value == "a"
    first = bytes(control.image.value)  # ipywidgets keeps the bytes as a memoryview
    assert calls == [0] and first.startswith(PNG)  # only the shown configuration is drawn up front

    control.slider.value = 2  # what the front end sends when the reader moves the slider
    assert calls == [0, 2]
    assert bytes(control.image.value).startswith(PNG) and bytes(control.image.value) != first
    assert control.label.value == "c"

    control.slider.value = 0  # back to a drawn configuration: from the cache, not redrawn
    assert calls == [0, 2] and bytes(control.image.value) == first and control.label.value == "a"
    assert control.box.children[1] is control.image


def test_widget_slider_reports_bad_draws():
    with pytest.raises(ValueError, match="at least one"):
        book.widget_slider(_recording_draw([]), [])
    with pytest.raises(RuntimeError, match=r"configuration 0 \('a'\)"):
        book.widget_slider(lambda i: 1 / 0, ["a"])
    with pytest.raises(TypeError, match="matplotlib figure"):
        book.widget_slider(lambda i: None, ["a"])


def test_live_frontend_only_with_a_jupyter_server_or_override(monkeypatch):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("CSIL_WIDGETS", raising=False)
    assert not book.live_frontend()  # plain Python: no kernel at all
    monkeypatch.setenv("JPY_SESSION_NAME", "book/03_hetstat_uncertainty.ipynb")
    assert not book.live_frontend()  # still no kernel in this process
    monkeypatch.setenv("CSIL_WIDGETS", "1")
    assert book.live_frontend()
    monkeypatch.setenv("CSIL_WIDGETS", "0")
    assert not book.live_frontend()
    monkeypatch.setenv("CSIL_WIDGETS", "yes")
    with pytest.raises(ValueError, match="CSIL_WIDGETS='yes'"):
        book.live_frontend()


def test_config_slider_static_without_a_front_end(monkeypatch):
    monkeypatch.delenv("CSIL_WIDGETS", raising=False)
    calls = []
    markup = book.config_slider(_recording_draw(calls), ["a", "b"], live=False)
    assert calls == [0, 1] and 'type="range"' in markup and markup.count("data:image/png;base64,") == 3


def test_static_slider_renders_every_config_and_surfaces_errors():
    calls = []

    def draw(i):
        calls.append(i)
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, i])
        return fig

    markup = book.static_slider(draw, ["a", "b<c", "d"])
    assert calls == [0, 1, 2]
    assert markup.count("data:image/png;base64,") == 4  # three in the script's list + the first one shown
    assert 'max="2"' in markup and "b\\u003cc" in markup  # labels reach the script escaped, never raw "<"

    def broken(i):
        raise KeyError(i)

    with pytest.raises(RuntimeError, match="configuration 0"):
        book.static_slider(broken, ["a"])
    with pytest.raises(TypeError, match="matplotlib figure"):
        book.static_slider(lambda i: None, ["a"])
    with pytest.raises(ValueError, match="at least one"):
        book.static_slider(draw, [])


CELLS = [
    "import matplotlib; matplotlib.use('Agg')\nimport matplotlib.pyplot as plt",
    "from csil_lite.book import config_slider",
    "def draw(i):\n    fig, ax = plt.subplots(figsize=(2, 1.5))\n    ax.plot([0, 1], [0, i])\n    return fig",
    "control = config_slider(draw, ['a', 'b', 'c'], description='config');",
    "print(type(control).__name__)",
]


def _execute_headless(env_widgets, timeout=120):
    """Run a notebook with the slider cell the way nbmake and jupyter-book do (nbclient, no front end)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in CELLS])
    code = "import os\nos.environ.pop('JPY_SESSION_NAME', None)\n" f"os.environ['CSIL_WIDGETS'] = {env_widgets!r}"
    nb.cells.insert(0, nbformat.v4.new_code_cell(code))
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3").execute()
    return nb, time.perf_counter() - t0


def _mimes(nb):
    return {m for c in nb.cells for o in c.get("outputs", []) for m in o.get("data", {})}


@pytest.mark.slow
def test_headless_execution_shows_the_static_slider_and_does_not_wait():
    nb, seconds = _execute_headless("")  # auto-detect, as in CI: no front end
    assert seconds < 60, f"headless execution took {seconds:.0f} s"
    assert "text/html" in _mimes(nb) and WIDGET_MIME not in _mimes(nb)
    assert nb.cells[-1].outputs[0]["text"].strip() == "str"  # the pre-rendered HTML


@pytest.mark.slow
def test_widget_path_never_blocks_headless_execution_either():
    nb, seconds = _execute_headless("1")  # the live-kernel path, forced, and nobody answers widget messages
    assert seconds < 60, f"headless execution of the widget path took {seconds:.0f} s"
    assert WIDGET_MIME in _mimes(nb)
    assert nb.cells[-1].outputs[0]["text"].strip() == "LiveSlider"


def test_chapter_3_slider_goes_through_config_slider():
    """The chapter never builds widgets itself, so headless runs always take the non-blocking static path."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "03_hetstat_uncertainty.md").read_text()
    cells = re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", text, flags=re.S)
    slider = [c for c in cells if "config_slider(" in c]
    assert len(slider) == 1, "chapter 3 should have exactly one slider cell"
    assert "from csil_lite.book import config_slider" in slider[0]
    code = re.sub(r"#[^\n]*", "", "\n".join(cells))  # comments may name ipywidgets
    assert not re.search(r"\bipywidgets\b|\binteract(ive)?\(", code)
