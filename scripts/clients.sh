#!/usr/bin/env bash
# Installs the real clients the client tests (tests/clients.rs) run against the fake Kimi API,
# at pinned versions, into a private directory (nothing global): Claude Code from npm, the
# anthropic and openai Python SDKs from PyPI. Prints the directory; the tests find it through
# KIMI_VAULT_CLIENTS (default: $CARGO_TARGET_DIR/clients, or target/clients).
#
# Telemetry, update checks and other non-essential traffic are turned off here and again by the
# tests: the clients talk to loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

CLAUDE_CODE_VERSION=2.1.197
ANTHROPIC_SDK_VERSION=2.15.0
OPENAI_SDK_VERSION=3.57.0

dir=${KIMI_VAULT_CLIENTS:-${CARGO_TARGET_DIR:-target}/clients}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Caches inside the directory too: nothing is written to ~/.npm or ~/.cache/pip.
export npm_config_cache="$dir/npm-cache" PIP_CACHE_DIR="$dir/pip-cache"
export DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 \
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 npm_config_fund=false npm_config_audit=false \
  npm_config_update_notifier=false PIP_DISABLE_PIP_VERSION_CHECK=1

stamp="$dir/.installed-claude-$CLAUDE_CODE_VERSION-anthropic-$ANTHROPIC_SDK_VERSION-openai-$OPENAI_SDK_VERSION"
if [ -f "$stamp" ]; then
  echo "$dir"
  exit 0
fi

command -v npm >/dev/null || { echo "clients.sh: npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "clients.sh: python3 is needed" >&2; exit 1; }

# Claude Code: the npm package ships the native binary in a per-platform optional dependency.
mkdir -p "$dir/npm"
npm install --prefix "$dir/npm" --no-save --loglevel=error \
  "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2
# The SDKs, in a virtual environment of their own.
[ -x "$dir/venv/bin/python" ] || python3 -m venv "$dir/venv" >&2
"$dir/venv/bin/python" -m pip install --quiet \
  "anthropic==$ANTHROPIC_SDK_VERSION" "openai==$OPENAI_SDK_VERSION" >&2

"$dir/npm/node_modules/.bin/claude" --version >&2
"$dir/venv/bin/python" -c 'import anthropic, openai; print("anthropic", anthropic.__version__, "openai", openai.__version__)' >&2
rm -f "$dir"/.installed-*
touch "$stamp"
echo "$dir"
