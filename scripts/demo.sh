#!/usr/bin/env bash
# The main job: the demo story on local Spark. Extra args go to the demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python scripts/demo.py "$@"
