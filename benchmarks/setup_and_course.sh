#!/usr/bin/env bash
# Times the README's commands on a fresh clone of HEAD: `make setup` with no .venv (uv's package
# cache as it is on this machine), `make setup` again (nothing to do), chapters 01-02 through
# `make course`, and optionally the whole `make test` (pass --with-tests).
set -euo pipefail
repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone --quiet "$repo" "$work/clone"
cd "$work/clone"

seconds() { local start=$SECONDS; "$@" >"$work/last.log" 2>&1 || { tail -n 20 "$work/last.log"; exit 1; }; echo $((SECONDS - start)); }

printf 'make setup (no .venv):        %4s s\n' "$(seconds make setup)"
printf 'make setup (again):           %4s s\n' "$(seconds make setup)"
printf 'make course, chapters 01-02:  %4s s\n' "$(seconds make course COURSE_ARGS='--offline --only 01 02')"
grep -E '^(chapter|0[12]_)' "$work/last.log" || true
if [[ "${1:-}" == "--with-tests" ]]; then
  printf 'make test:                    %4s s\n' "$(seconds make test)"
  tail -n 1 "$work/last.log"
fi
