"""Named algorithms, one small file each, composed from `base`: `get(preview: bool) -> RunConfig`.

    from csil_lite.configs import get
    cfg = get("csil", preview=True)

`csil_lite.config.preset(budget, algo=...)` is a lookup in this table. Every algorithm is the same agent core
with other components (prior, reward source, critic, update schedule, KL estimator) or budgets.
"""

from __future__ import annotations

from types import ModuleType

from csil_lite.config import RunConfig
from csil_lite.configs import bc, csil, csilpp, sac_bc, sacfd, xqc_od

ALGORITHMS: dict[str, ModuleType] = {"csil": csil, "sac_bc": sac_bc, "bc": bc, "csilpp": csilpp, "xqc_od": xqc_od,
                                     "sacfd": sacfd}


def get(algo: str, preview: bool, paper_budget: bool = False) -> RunConfig:
    """The named algorithm's configuration at the preview (CPU minutes), the reference or (`paper_budget`) the
    seed paper's Table II budget."""
    try:
        module = ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"unknown algo {algo!r}; choose from {tuple(ALGORITHMS)}") from None
    return module.get(preview, paper_budget)


__all__ = ["ALGORITHMS", "get"]
