"""The book uses a local MathJax only when one is cached, and leaves Sphinx's CDN default alone otherwise."""

from types import SimpleNamespace

from csil_lite import sphinx_mathjax


def _config():
    return SimpleNamespace(html_static_path=["_static"], mathjax_path="https://cdn.example/tex-mml-chtml.js")


def test_local_copy_is_used_when_present(tmp_path, monkeypatch):
    (tmp_path / "mathjax").mkdir()
    (tmp_path / "mathjax" / "tex-mml-chtml.js").write_text("// stub")
    monkeypatch.setenv("CSIL_MATHJAX_DIR", str(tmp_path))
    cfg = _config()
    sphinx_mathjax._use_local_copy(None, cfg)
    assert cfg.mathjax_path == "mathjax/tex-mml-chtml.js"
    assert cfg.html_static_path == ["_static", str(tmp_path)]


def test_cdn_default_kept_without_a_local_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("CSIL_MATHJAX_DIR", str(tmp_path / "absent"))
    cfg = _config()
    sphinx_mathjax._use_local_copy(None, cfg)
    assert cfg == _config()
