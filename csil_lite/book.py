"""Small helpers the chapters share: the preview banner, where stored results live, sliders over stored results.

Chapters read the toggle themselves (`PREVIEW = os.environ.get("CSIL_PREVIEW", "1") != "0"`) so the
convention is visible on the page; everything else that is not about the method lives here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import platform
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Sequence


class Banner(NamedTuple):
    """The preview/full banner: a small admonition in the HTML book and in Jupyter, plain lines elsewhere."""

    title: str
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join((self.title, *self.lines))

    def __repr__(self) -> str:  # what a plain-text front end (and nbmake's text/plain) shows
        return self.text()

    def _repr_html_(self) -> str:
        import html

        body = "".join(f"<p>{html.escape(line)}</p>" for line in self.lines)
        kind = "note" if self.title.startswith("PREVIEW") else "important"
        return (f'<div class="admonition {kind} csil-banner"><p class="admonition-title">{html.escape(self.title)}'
                f"</p>{body}</div>")


def banner_of(preview: bool, what: str = "") -> Banner:
    """The banner's content: what the preview reduces, and what full mode (CSIL_PREVIEW=0) runs instead.

    Full mode is the reference CSIL code's scale: its network sizes and budgets (25k BC and 5k SARSA steps, 250k
    environment steps for a CSIL run unless the chapter sets another), not the paper's own experiment protocol.
    """
    if preview:
        lines = [f"Reduced here: {what}"] if what else []
        lines.append("CSIL_PREVIEW=0 runs the full mode: the reference CSIL code's network sizes and budgets "
                     "(a CSIL run: 25k BC steps, 250k env steps; GPU recommended).")
        return Banner("PREVIEW MODE (CSIL_PREVIEW=1): small CPU budget, illustrative curves.", tuple(lines))
    return Banner("FULL MODE (CSIL_PREVIEW=0): the reference CSIL code's network sizes and budgets wherever this "
                  "chapter trains networks.", ())


def banner(preview: bool, what: str = "") -> None:
    """Show the banner so preview figures are never mistaken for full-budget results.

    In a notebook (Jupyter, the HTML book) it is displayed as an admonition; a chapter puts it right under its
    title in a cell whose input is hidden. Without IPython it prints the same lines.
    """
    b = banner_of(preview, what)
    shell = None
    ipython = sys.modules.get("IPython")
    if ipython is not None:
        shell = ipython.get_ipython()
    if shell is None:
        print(b.text())
        return
    from IPython.display import display

    display(b)


def artefacts_dir() -> Path:
    """Directory of stored (small) full-run results: $CSIL_RESULTS, else `_artefacts` next to the chapters."""
    env = os.environ.get("CSIL_RESULTS")
    if env:
        return Path(env)
    for candidate in (Path("_artefacts"), Path("book") / "_artefacts"):
        if candidate.is_dir():
            return candidate
    return Path("_artefacts")


def machine_name() -> str:
    """This machine for a stored measurement: the CPU's model and core count (Linux; else `platform`'s guess) and
    jax's device (its kind when not a CPU)."""
    import platform

    import jax

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    device = jax.devices()[0]
    kind = f" ({device.device_kind})" if device.platform != "cpu" else ""
    return f"{model}, {os.cpu_count()} cores, jax on {device.platform}{kind}"


def sweeps_dir() -> Path:
    """The repository's sweep files (`sweeps/`, chapter 11), from the book's folder or the repository root."""
    for candidate in (Path("..") / "sweeps", Path("sweeps")):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("no sweeps/ folder next to the book: run the chapter from the repository")


def environment_report() -> dict[str, str]:
    """Versions and devices, for chapter 0 and for bug reports."""
    import importlib.metadata as md

    import jax

    report = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("csil_lite", "jax", "flax", "optax", "distrax", "numpy", "gymnasium", "robosuite", "mujoco", "h5py"):
        try:
            report[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            report[pkg] = "not installed"
    report["jax devices"] = ", ".join(str(d) for d in jax.devices())
    report["CSIL_PREVIEW"] = os.environ.get("CSIL_PREVIEW", "1 (default)")
    return report


def device_warning(platforms: list[str] | None = None, preview: bool | None = None,
                   cuda_plugin: bool | None = None) -> str | None:
    """A warning when a GPU is expected but JAX has none: a CUDA plugin is installed but JAX runs on the CPU
    (a driver or version mismatch), or full mode (CSIL_PREVIEW=0) runs on the CPU (paper-scale runs take days
    there). None when nothing is wrong. The arguments default to this process's JAX, mode and packages."""
    import importlib.util

    if platforms is None:
        import jax
        platforms = [d.platform for d in jax.devices()]
    if preview is None:
        preview = os.environ.get("CSIL_PREVIEW", "1") != "0"
    if cuda_plugin is None:
        cuda_plugin = any(importlib.util.find_spec(m) is not None for m in ("jax_cuda12_plugin", "jax_cuda13_plugin"))
    on_gpu = any(p in ("gpu", "cuda", "rocm") for p in platforms)
    if cuda_plugin and not on_gpu:
        return ("a CUDA build of jax is installed but jax sees no GPU (check `nvidia-smi` and that the plugin's "
                "CUDA version matches the driver); everything will run on the CPU")
    if not preview and not on_gpu:
        return ("full mode (CSIL_PREVIEW=0) on the CPU: paper-scale runs take days here; install `jax[cuda12]` on "
                "a GPU machine, or unset CSIL_PREVIEW for the preview")
    return None


@contextmanager
def timed(label: str) -> Iterator[None]:
    """Print how long a cell took; chapters report their own cost honestly."""
    t0 = time.perf_counter()
    yield
    print(f"[{label}] {time.perf_counter() - t0:.1f} s")


def live_frontend() -> bool:
    """True when a Jupyter front end is attached to this kernel, so that widgets are seen and answered.

    `CSIL_WIDGETS=1` or `0` decides. Otherwise yes for a kernel that a Jupyter server started (JupyterLab,
    Notebook, Binder: the server puts `JPY_SESSION_NAME` in the kernel's environment) or a Colab kernel, and
    no for anything else: the headless executors (nbmake, jupyter-book, nbconvert) start kernels without
    either, and a plain Python process has no front end at all.
    """
    forced = os.environ.get("CSIL_WIDGETS", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"CSIL_WIDGETS={forced!r}: expected 1 (widgets), 0 (static) or unset (detect)")
    if "google.colab" in sys.modules:
        return True
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return bool(getattr(shell, "kernel", None)) and bool(os.environ.get("JPY_SESSION_NAME"))


class LiveSlider(NamedTuple):
    """The parts of `widget_slider`'s control: the box to display and the widgets inside it."""

    box: Any  # ipywidgets.VBox
    slider: Any  # ipywidgets.IntSlider
    label: Any  # ipywidgets.Label
    image: Any  # ipywidgets.Image (PNG bytes)


def render_png(draw: Callable[[int], Any], i: int, label: str, dpi: int, who: str = "slider") -> bytes:
    """PNG bytes of the figure `draw(i)` returns (closed afterwards); errors name `who`, `i` and `label`."""
    import matplotlib.pyplot as plt

    try:
        fig = draw(i)
    except Exception as exc:
        raise RuntimeError(f"{who}: drawing configuration {i} ({label!r}) failed") from exc
    if not hasattr(fig, "savefig"):
        raise TypeError(f"{who}: draw({i}) must return a matplotlib figure, got {type(fig).__name__}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def widget_slider(
    draw: Callable[[int], Any], labels: Sequence[str], description: str = "config", *, dpi: int = 90
) -> LiveSlider:
    """An ipywidgets `IntSlider` over stored configurations: moving it calls `draw(i)` and shows its figure.

    `draw(i)` only plots stored results and returns the figure. Each configuration is drawn when first asked
    for and kept, so going back is instant. Nothing waits on the front end: the callback runs when the kernel
    receives the slider's new value. Not displayed; `config_slider` does that.
    """
    import ipywidgets as widgets

    if not labels:
        raise ValueError("widget_slider: need at least one configuration label")
    labels = [str(lab) for lab in labels]
    pngs = {0: render_png(draw, 0, labels[0], dpi)}
    slider = widgets.IntSlider(value=0, min=0, max=len(labels) - 1, step=1, description=description,
                               continuous_update=False)
    label = widgets.Label(value=labels[0])
    image = widgets.Image(value=pngs[0], format="png")

    def show(change: dict) -> None:
        i = int(change["new"])
        if i not in pngs:
            pngs[i] = render_png(draw, i, labels[i], dpi)
        image.value, label.value = pngs[i], labels[i]

    slider.observe(show, names="value")
    return LiveSlider(widgets.VBox([widgets.HBox([slider, label]), image]), slider, label, image)


def static_slider(
    draw: Callable[[int], Any], labels: Sequence[str], description: str = "config", *, dpi: int = 90
) -> str:
    """A slider over precomputed configurations that works without a kernel: in the static HTML book too.

    `draw(i)` must only *plot* stored results and return its figure. Every configuration is rendered once to a
    PNG; the slider swaps images in the browser. (An ipywidgets slider needs a live kernel to redraw, and its
    comm messages made headless notebook execution stall.) Displays the HTML and returns it.
    """
    if not labels:
        raise ValueError("config_slider: need at least one configuration label")
    images = []
    for i, label in enumerate(labels):
        png = render_png(draw, i, label, dpi, who="config_slider")
        images.append("data:image/png;base64," + base64.b64encode(png).decode())
    uid = "csil-slider-" + uuid.uuid4().hex[:8]
    data = json.dumps({"src": images, "label": [str(lab) for lab in labels]}).replace("<", "\\u003c")  # no </script>
    markup = (
        f'<div id="{uid}"><label>{html.escape(description)} <input type="range" min="0" '
        f'max="{len(labels) - 1}" step="1" value="0" style="vertical-align:middle"></label> '
        f'<span>{html.escape(str(labels[0]))}</span><br><img src="{images[0]}" style="max-width:100%"></div>'
        f"<script>(function(){{var d=document.getElementById('{uid}'),c={data};"
        "d.querySelector('input').addEventListener('input',function(){"
        "d.querySelector('img').src=c.src[this.value];d.querySelector('span').textContent=c.label[this.value];});"
        "})();</script>"
    )
    from IPython.display import HTML, display  # lazily: plain Python does not need IPython

    display(HTML(markup))
    return markup


def config_slider(
    draw: Callable[[int], Any],
    labels: Sequence[str],
    description: str = "config",
    *,
    live: bool | None = None,
) -> Any:
    """A slider over stored configurations, displayed: ipywidgets where a front end is attached, else static.

    With a front end (`live_frontend()`, or `live=True`) it is `widget_slider`'s control. Otherwise (the
    book's HTML, headless execution) every configuration is pre-rendered and the slider swaps the images in
    the browser (`static_slider`), so no widget is created and nothing waits for widget messages.
    Returns the `LiveSlider` or the static HTML.
    """
    if live is None:
        live = live_frontend()
    if not live:
        return static_slider(draw, labels, description)
    from IPython.display import display

    control = widget_slider(draw, labels, description)
    display(control.box)
    return control
