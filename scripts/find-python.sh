#!/usr/bin/env bash
# Print the path of a working python interpreter of version $1 (e.g. 3.9, 3.11).
# pyenv shims (python3.9) fail when that version is not the active one, so the
# pyenv version dirs are tried too. Exit 1 when none is found.
set -u
want="${1:?usage: find-python.sh X.Y}"
cands=("python$want")
root="${PYENV_ROOT:-$HOME/.pyenv}"
for d in "$root"/versions/"$want".*/bin/python"$want" /usr/bin/python"$want" /usr/local/bin/python"$want"; do
  cands+=("$d")
done
for c in "${cands[@]}"; do
  p=$(command -v "$c" 2>/dev/null) || continue
  v=$("$p" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
  if [ "$v" = "$want" ]; then
    "$p" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
echo "find-python.sh: no python$want found (pyenv versions or PATH)" >&2
exit 1
