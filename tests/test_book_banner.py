"""The chapters' banner says what full mode runs: the reference CSIL code's budget, not the paper's."""

from csil_lite.book import banner


def test_preview_banner_names_the_reduction_and_the_full_budget(capsys):
    banner(True, "2 seeds only.")
    out = capsys.readouterr().out
    assert "PREVIEW MODE" in out and "Reduced here: 2 seeds only." in out
    assert "reference CSIL code" in out and "250k env steps" in out
    assert "paper-scale" not in out


def test_full_banner_names_the_reference_budget(capsys):
    banner(False)
    out = capsys.readouterr().out
    assert out.startswith("FULL MODE (CSIL_PREVIEW=0)") and "reference CSIL code" in out
    assert "paper-scale" not in out
