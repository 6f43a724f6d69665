"""The chapters' banner says what full mode runs: the reference CSIL code's budget, not the paper's; in HTML it is a
small admonition (the book shows it under each chapter's title)."""

from csil_lite.book import banner, banner_of


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


def test_banner_html_is_an_escaped_admonition():
    html = banner_of(True, "a < b & 2 seeds")._repr_html_()
    assert html.startswith('<div class="admonition note csil-banner">'), html
    assert "a &lt; b &amp; 2 seeds" in html and "<p class=\"admonition-title\">PREVIEW MODE" in html
    assert 'class="admonition important' in banner_of(False)._repr_html_()
    assert repr(banner_of(True, "x")) == banner_of(True, "x").text()
