#!/usr/bin/env bash
# The README's pictures: the first screen of the published quick and pathak2023 reports, as
# headless Chromium renders them (1280 x 900). Run from the repository root: bash docs/screenshots.sh
set -euo pipefail
for suite in quick pathak2023; do
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
        --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$(mktemp -d)" \
        --window-size=1280,900 --screenshot="docs/img/$suite-report.png" "file://$PWD/reports/$suite.html" 2>/dev/null
done
ls -l docs/img/*-report.png
