"""Per-chapter numbering of figures and equations (csil_lite.sphinx_chapters)."""

from csil_lite.sphinx_chapters import chapter_number, per_chapter


def test_chapter_number_comes_from_the_file_name():
    assert chapter_number("book/07_manipulation") == 7
    assert chapter_number("book/00_setup") == 0
    assert chapter_number("12_late") == 12
    assert chapter_number("book/intro") is None
    assert chapter_number("book/07_part/notes") is None  # only the page's own name counts


def test_numbers_restart_in_each_chapter_and_carry_its_number():
    # Sphinx's book-wide numbers: chapter 3 is 4th in the toc, chapter 7 follows a missing chapter 6.
    sphinx = {
        "book/intro": {"figure": {"f-intro": (1,)}},
        "book/03_hetstat": {"figure": {"a": (9,), "b": (7,), "c": (8,)}, "displaymath": {"e1": (4,)}},
        "book/07_manipulation": {"figure": {"x": (27,), "y": (28,)}, "displaymath": {"e": (29,), "f": (30,)}},
    }
    out = per_chapter(sphinx)
    assert out["book/intro"] == sphinx["book/intro"]
    assert out["book/03_hetstat"]["figure"] == {"b": (3, 1), "c": (3, 2), "a": (3, 3)}  # document order kept
    assert out["book/03_hetstat"]["displaymath"] == {"e1": (3, 1)}
    assert out["book/07_manipulation"] == {"figure": {"x": (7, 1), "y": (7, 2)},
                                           "displaymath": {"e": (7, 1), "f": (7, 2)}}
    # what Sphinx prints: ".".join(numbers) under numfig_format "Fig. %s" / math_eqref_format "({number})"
    assert "Fig. %s" % ".".join(map(str, out["book/07_manipulation"]["figure"]["y"])) == "Fig. 7.2"


def test_book_config_enables_it():
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "_config.yml").read_text())
    sphinx = cfg["sphinx"]
    assert "csil_lite.sphinx_chapters" in sphinx["extra_extensions"]
    assert sphinx["config"]["numfig"] and sphinx["config"]["math_numfig"]
    assert sphinx["config"]["math_eqref_format"] == "({number})"
