#!/usr/bin/env bash
# The two commands of the README:
#   ./dev.sh serve   the service, embedded (fakeredis + SQLite) unless REDIS_URL and DATABASE_URL are set
#   ./dev.sh test    the whole test suite against the real PostgreSQL and Redis of this machine
# Both create .venv and install what they need on first use.
set -euo pipefail
cd "$(dirname "$0")"

venv() {
  local stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -e '.[test]'
    touch "$stamp"
  fi
}

browser() {
  # The browser tests drive Debian's Chromium (Playwright's own download cannot run here).
  if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

monitoring() {
  # tests/ops/test_ops.py runs promtool, a Prometheus and both exporters: Debian's packages.
  # Under systemd the packages also start their own services (Prometheus on :9090); the
  # tests start theirs on free ports either way.
  local missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-redis-exporter >/dev/null || missing+=(prometheus-redis-exporter)
  command -v prometheus-postgres-exporter >/dev/null || missing+=(prometheus-postgres-exporter)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]} for the ops tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

case "${1:-}" in
  serve)
    shift
    venv
    exec .venv/bin/boxoffice serve "$@"
    ;;
  test)
    shift
    venv
    browser
    monitoring
    .venv/bin/ruff check .
    exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
    ;;
  *)
    echo "usage: ./dev.sh serve [--port N] | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
