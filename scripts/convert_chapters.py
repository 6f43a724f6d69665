"""Convert the jupytext chapters of a scratch copy of book/ to .ipynb (in place of the .md) for nbmake.

Only files with a kernelspec in their front matter are notebooks; plain pages (intro) stay markdown.
"""

import sys
from pathlib import Path

import jupytext

root = Path(sys.argv[1])
converted = 0
for md in sorted(root.glob("*.md")):
    text = md.read_text()
    if not text.startswith("---") or "kernelspec:" not in text.split("---", 2)[1]:
        continue
    nb = jupytext.reads(text, fmt="md:myst")
    jupytext.write(nb, md.with_suffix(".ipynb"))
    md.unlink()
    converted += 1
print(f"converted {converted} chapters in {root}")
if converted == 0:
    sys.exit("no chapters found to convert")
