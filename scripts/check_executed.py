"""Fail unless every chapter notebook in the scratch copy was executed (has outputs): guards against a test run
that silently skipped the notebooks."""

import json
import sys
from pathlib import Path

notebooks = sorted(Path(sys.argv[1]).glob("*.ipynb"))
if not notebooks:
    sys.exit(f"no notebooks in {sys.argv[1]}")
bad = [nb.name for nb in notebooks
       if not any(c.get("outputs") for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")]
if bad:
    sys.exit(f"chapters never executed (no outputs): {bad}")
print(f"{len(notebooks)} executed chapters")
