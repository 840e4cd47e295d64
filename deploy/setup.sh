#!/usr/bin/env bash
# Sets up Beckon on a fresh machine: system tools (Java 17, Maven, Chromium, jemalloc) where
# missing, the Python environment in .venv/ from the pinned constraints, and Kafka's jars
# from Maven Central. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# The browser tests (tests/e2e) drive Debian's Chromium through its chromedriver.
[[ -x /usr/bin/chromedriver ]] || need_apt+=(chromium chromium-driver)
# The worker runs on jemalloc, which keeps RocksDB's memory flat (streams/worker/allocator.py).
[[ $(/sbin/ldconfig -p 2>/dev/null) == *libjemalloc.so.2* ]] || need_apt+=(libjemalloc2)
if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_apt[*]} with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    say "missing: ${need_apt[*]} — install them (Debian: sudo apt-get install ${need_apt[*]}) and run again"
    exit 1
  fi
fi

python3 - <<'PY' || { say "Python 3.11 or newer is needed as python3"; exit 1; }
import sys; sys.exit(sys.version_info < (3, 11))
PY

# Reinstall only when the inputs changed: the stamp holds a hash of them.
stamp=.venv/.beckon-installed
want=$(cat pyproject.toml deploy/constraints.txt | sha256sum | cut -c1-16)
if [[ ! -x .venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  say "installing Python packages into .venv/"
  [[ -x .venv/bin/python ]] || python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c deploy/constraints.txt -e '.[test]'
  echo "$want" > "$stamp"
fi

.venv/bin/beckon broker install >/dev/null
say "ready: .venv/bin/beckon"
