#!/bin/sh
# Measures the offsets of pyheap's layout: offsets.c (offsetof/sizeof over the headers of
# pyenv's CPython 3.10-3.12, internal headers included) and keys.py (3.10's dict keys, whose
# header is not installed, measured in a live 3.10). Writes measured.txt beside this script,
# which layout.rs's tests compare with the tables. Needs gcc and pyenv's versions.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${PYENV_ROOT:-$HOME/.pyenv}/versions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
{
    echo "# by pyheap/measure/measure.sh (offsets.c over the headers; keys.py in a live 3.10): version key value"
    for minor in 10 11 12; do
        dir=$(ls -d "$root"/3.$minor.* | sort -V | tail -n 1)
        inc="$dir/include/python3.$minor"
        echo "# $(basename "$dir")"
        gcc -I"$inc" -I"$inc/internal" "$here/offsets.c" -o "$out/offsets-3.$minor"
        "$out/offsets-3.$minor"
        if [ "$minor" = 10 ]; then
            "$dir/bin/python3" "$here/keys.py"
        fi
    done
} > "$here/measured.txt"
