#!/usr/bin/env bash
# Installs what the ONNX export tests (package export/onnx) use, so that they run instead
# of skipping:
#   - the Debian package python3-onnx: onnx.checker validates every exported graph
#     (with /usr/bin/python3, or the interpreter named by ONNX_CHECK_PYTHON);
#   - the npm package onnxruntime-node (its CPU library ships in the package, no install
#     scripts needed): runs every exported model, installed into export/onnx/testdata/ort
#     (ignored by git) or into the directory named by ONNXRUNTIME_NODE_DIR.
# Node.js and npm come from the Debian packages nodejs and npm when missing.
# Safe to run again: it installs only what is missing or at another version.
set -euo pipefail
cd "$(dirname "$0")/.."

# the onnxruntime-node version the tests were last run with
ORT_VERSION="${ORT_VERSION:-1.23.2}"
DEST="${ONNXRUNTIME_NODE_DIR:-export/onnx/testdata/ort}"

export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
missing=""
dpkg -s python3-onnx >/dev/null 2>&1 || missing="$missing python3-onnx"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

installed=""
if [ -f "$DEST/node_modules/onnxruntime-node/package.json" ]; then
  installed="$(node -p 'require(process.argv[1]).version' "$(realpath "$DEST")/node_modules/onnxruntime-node/package.json" 2>/dev/null || true)"
fi
if [ "$installed" != "$ORT_VERSION" ]; then
  mkdir -p "$DEST"
  npm install --prefix "$DEST" --ignore-scripts --no-save --no-audit --no-fund "onnxruntime-node@$ORT_VERSION"
fi
echo "python3-onnx: $(/usr/bin/python3 -c 'import onnx; print(onnx.__version__)')"
echo "onnxruntime-node $ORT_VERSION in $DEST/node_modules"
