#!/usr/bin/env bash
# Put a local MathJax 3 (from the npm registry) where csil_lite.sphinx_mathjax finds it, so the built book renders
# formulas without reaching a CDN. Never fatal: without it the book falls back to Sphinx's CDN MathJax.
set -u
VERSION=3.2.2
DEST="${CSIL_MATHJAX_DIR:-$HOME/.cache/csil_lite/mathjax-$VERSION}"
if [ -f "$DEST/mathjax/tex-mml-chtml.js" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "fetch-mathjax: npm not found; the book will load MathJax from its CDN" >&2
  exit 0
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
if ! (cd "$TMP" && timeout 300 npm pack "mathjax@$VERSION" --silent >/dev/null 2>&1 && tar xzf "mathjax-$VERSION.tgz"); then
  echo "fetch-mathjax: could not fetch mathjax@$VERSION from npm; the book will load MathJax from its CDN" >&2
  exit 0
fi
ES5="$TMP/package/es5"
mkdir -p "$DEST/mathjax/output"
# The combined TeX+MathML loader, the TeX extensions it autoloads, the CHTML fonts and the menu's lazy parts.
cp "$ES5/tex-mml-chtml.js" "$DEST/mathjax/"
cp -r "$ES5/input" "$ES5/ui" "$ES5/a11y" "$DEST/mathjax/"
cp -r "$ES5/output/chtml" "$DEST/mathjax/output/"
echo "fetch-mathjax: MathJax $VERSION in $DEST"
