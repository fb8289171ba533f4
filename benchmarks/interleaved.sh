#!/usr/bin/env bash
# Interleaved before/after rounds of `actorsrc bench` for two source trees (e.g. two git worktrees):
#   git worktree add /tmp/before <commit>
#   bash benchmarks/interleaved.sh /tmp/before . 4 write hot project
# Prints "round side workload throughput what"; take the medians and the per-round ratios.
set -euo pipefail
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); rounds=$3; shift 3
python=${PYTHON:-$after/.venv/bin/python}
cd "$(mktemp -d)"  # neither tree's files shadow the other's
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    if [ "$side" = before ]; then tree=$before; else tree=$after; fi
    for workload in "$@"; do
      figure=$(PYTHONPATH=$tree "$python" -m actorsrc.cli bench "$workload" --json 2>/dev/null |
        "$python" -c "import json,sys; r=json.load(sys.stdin)['results'][0]; print(r['throughput'], r['what'])")
      echo "$round $side $workload $figure"
    done
  done
done
