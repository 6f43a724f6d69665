"""Look at the built book as a reader does: every chapter page in headless Chromium, screenshotted and checked.

    python scripts/check_pages.py [HTML_DIR] [--book BOOK_SRC] [--shots DIR] [--width 1280] [--pages 05 06]

HTML_DIR defaults to build-notebooks/_build/html (what `make book-check` builds), BOOK_SRC to the matching book/
sources (the chapters' .md or converted .ipynb). For each chapter page it fails on

- a **traceback** on the page (an executed cell that raised);
- a **blank glued number**: fewer pasted values on the page than `{glue}` roles in the chapter's source, or an
  empty one;
- an **equation wider than its column**: a display equation whose typeset width exceeds the space beside its
  number (the number or the end of the formula is cut off);
- an **output wider than its column**: a cell output block that runs past the text column (scrolling inside
  its own box is fine);
- raw labels: `fig-...`/`eq-...` label text or unrendered `{numref}`/`{eq}` roles in the visible text.

It prints one line per page and writes full-page screenshots (PNG) to --shots. Needs Playwright's Python package
and a Chromium (`/usr/bin/chromium`, Debian's `chromium`, or $CHROMIUM). Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GLUE_ROLE = re.compile(r"\{glue(?::text|:math)?\}`")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]

# Runs in the page once MathJax has typeset it; returns what the checks need.
MEASURE = """() => {
  const main = document.querySelector('main#main-content article') || document.querySelector('article') || document.body;
  const col = main.getBoundingClientRect();
  const eqs = [...document.querySelectorAll('div.math')].map(d => {
    const m = d.querySelector('mjx-container');
    const no = d.querySelector('.eqno');
    return {id: d.id || '', number: no ? no.textContent.replace('#', '').trim() : '',
            tex: (d.getAttribute('data-tex') || (m ? '' : d.textContent)).slice(0, 80),
            width: m ? m.scrollWidth : 0, room: m ? m.clientWidth : 0,
            right: Math.round(d.getBoundingClientRect().right), typeset: !!m};
  });
  const outs = [...document.querySelectorAll('div.cell_output, div.output')].map(o => {
    const r = o.getBoundingClientRect();
    return {right: Math.round(r.right), text: o.textContent.trim().slice(0, 60)};
  });
  const tracebacks = [...document.querySelectorAll('div.output.traceback, .output_error, pre')]
    .filter(e => /Traceback \\(most recent call last\\)|-{20,}\\s*\\n?\\s*\\w+Error/.test(e.textContent))
    .map(e => e.textContent.trim().slice(0, 200));
  const pasted = [...document.querySelectorAll('[class^="pasted-"], [class*=" pasted-"]')]
    .map(e => e.textContent.trim());
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, script, style, mjx-container').forEach(e => e.remove());
  const text = clone.innerText;
  const raw = (text.match(/\\{(numref|eq|glue[:a-z]*|cite)\\}`[^`]*`|\\b(fig|eq)-ch\\d+-[\\w-]+/g) || []);
  return {colRight: Math.round(col.right), eqs, outs, tracebacks, pasted, raw,
          title: (document.querySelector('h1') || {}).textContent || ''};
}"""


def chapter_sources(book: Path) -> dict[str, Path]:
    out = {}
    for f in sorted(book.glob("[0-9][0-9]_*")):
        if f.suffix in (".md", ".ipynb"):
            out.setdefault(f.stem, f)
    return out


def glue_roles(src: Path) -> int:
    text = src.read_text()
    if src.suffix == ".ipynb":
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "markdown")
    return len(GLUE_ROLE.findall(text))


def check_page(page, url: str, n_glue: int, shot: Path | None) -> list[str]:
    page.goto(url)
    page.wait_for_load_state("load")
    # Sphinx loads MathJax only on pages with mathematics (chapter 11 has none): wait for it where it is loaded.
    if page.evaluate("!!document.querySelector('script[src*=\"mathjax\"]')"):
        page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
        page.evaluate("MathJax.startup.promise")
    m = page.evaluate(MEASURE)
    problems = []
    for tb in m["tracebacks"]:
        problems.append(f"traceback on the page: {tb[:120]!r}")
    blanks = sum(1 for p in m["pasted"] if not p)
    if len(m["pasted"]) < n_glue or blanks:
        problems.append(f"blank glued values: the source has {n_glue} glue roles, the page shows "
                        f"{len(m['pasted']) - blanks} values ({blanks} empty)")
    for e in m["eqs"]:
        if not e["typeset"]:
            problems.append(f"equation {e['number'] or e['id']} not typeset by MathJax: {e['tex']!r}")
        elif e["width"] > e["room"] + 1:
            problems.append(f"equation {e['number'] or e['id']} is {e['width']} px wide, {e['room']} px of room: "
                            "cut off")
    for o in m["outs"]:
        if o["right"] > m["colRight"] + 2:
            problems.append(f"output runs {o['right'] - m['colRight']} px past the column: {o['text']!r}")
    for r in sorted(set(m["raw"])):
        problems.append(f"raw label or role in the text: {r!r}")
    if shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("html", nargs="?", type=Path, default=ROOT / "build-notebooks" / "_build" / "html")
    ap.add_argument("--book", type=Path, default=None, help="chapter sources (default: HTML_DIR/../../book)")
    ap.add_argument("--shots", type=Path, default=None, help="write full-page screenshots here")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--pages", nargs="*", default=None, help="chapter numbers or stems (default: all)")
    args = ap.parse_args(argv)
    book = args.book or args.html.parent.parent / "book"
    if not (args.html / "book").is_dir():
        ap.error(f"{args.html}: no built book here (run `make book-check` or `make book` first)")
    sources = chapter_sources(book)
    if not sources:
        ap.error(f"{book}: no chapter sources (NN_name.md or .ipynb)")
    if args.pages:
        sources = {k: v for k, v in sources.items() if any(k.startswith(p) for p in args.pages)}
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        ap.error("no Chromium found: install Debian's `chromium` or set $CHROMIUM")
    from playwright.sync_api import sync_playwright

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(args.html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    if args.shots:
        args.shots.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            for stem, src in sources.items():
                html = args.html / "book" / f"{stem}.html"
                if not html.is_file():
                    print(f"{stem}: FAIL no page {html}")
                    failed += 1
                    continue
                shot = args.shots / f"{stem}.png" if args.shots else None
                problems = check_page(page, f"{base}/book/{stem}.html", glue_roles(src), shot)
                print(f"{stem}: {'ok' if not problems else 'FAIL'}")
                for pr in problems:
                    print(f"    {pr}")
                failed += bool(problems)
            browser.close()
    finally:
        server.shutdown()
    print(f"page check at {args.width} px: {len(sources) - failed}/{len(sources)} pages pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
