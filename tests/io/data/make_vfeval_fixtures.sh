#!/usr/bin/env bash
# Regenerate the vf-eval fixtures under tests/io/data/vfeval/ with the real `vf-eval`
# of verifiers 0.3.1 and 0.4.0, run against kbpipe's local OpenAI-compatible test
# server answering like vLLM with a reasoning parser (content + reasoning_content).
#
#   tests/io/data/make_vfeval_fixtures.sh          # from the repository root; needs PyPI once
#
# Each release gets a throwaway venv under $VF_VENVS (default /tmp/kbpipe-vf). The
# environments are kernelbook_env.py (0.3.x) and kernelbook_tasks.py (0.4.x) beside
# this script. Outputs keep vf-eval's own file names:
#   vfeval/v0.3.1-trajectory/  results.jsonl + metadata.json  (the seed's -s -C trajectory -R)
#   vfeval/v0.3.1/             results.jsonl + metadata.json  (no -C trajectory)
#   vfeval/v0.4.0/             traces.jsonl                    (--client.base-url, --no-push)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
venvs=${VF_VENVS:-/tmp/kbpipe-vf}
work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

for version in 0.3.1 0.4.0; do
  if [[ ! -x $venvs/$version/bin/vf-eval ]]; then
    python3 -m venv "$venvs/$version"
    "$venvs/$version/bin/pip" install --quiet "verifiers==$version"
  fi
done

"$repo/.venv/bin/python" -m kbpipe.testing.openai_server \
  --reply-file "$here/vfeval/reply.txt" \
  --reasoning "The module is elementwise, so one masked load/store kernel over the flat tensor is enough." \
  >"$work/server.out" &
server_pid=$!
for _ in $(seq 50); do grep -q '^URL=' "$work/server.out" && break; sleep 0.1; done
url=$(sed -n 's/^URL=//p' "$work/server.out")

export PYTHONPATH=$here/vfeval OPENAI_API_KEY=not-needed
cd "$work"

# 0.3.1: the seed's command (its --tui no longer exists: -d disables the TUI instead).
v031() {
  "$venvs/0.3.1/bin/vf-eval" kernelbook-env --model test-model --api-base-url "$url" \
    --api-key-var OPENAI_API_KEY --num-examples -1 --rollouts-per-example=1 \
    --max-concurrent 4 -d -o "$1" "${@:2}"
}
v031 out-traj -s -C trajectory -R
v031 out-plain -s
"$venvs/0.4.0/bin/vf-eval" kernelbook-tasks --model test-model --client.base-url "$url" \
  --client.api-key-var OPENAI_API_KEY --env.agent.runtime.type subprocess --no-push -o out-04

copy() {  # copy <vf-eval output dir> <fixture dir> <files...>
  local run
  run=$(dirname "$(find "$1" -name "$3" | head -n 1)")
  rm -rf "$here/vfeval/$2" && mkdir -p "$here/vfeval/$2"
  for f in "${@:3}"; do cp "$run/$f" "$here/vfeval/$2/$f"; done
}
copy out-traj v0.3.1-trajectory results.jsonl metadata.json
copy out-plain v0.3.1 results.jsonl metadata.json
copy out-04 v0.4.0 traces.jsonl
echo "wrote $(find "$here/vfeval" -name '*.json*' | wc -l) fixture files under $here/vfeval"
