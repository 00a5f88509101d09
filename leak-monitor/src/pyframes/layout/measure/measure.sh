#!/bin/sh
# Measures the offsets of offsets.c against the headers of pyenv's CPython 3.10-3.13 and
# writes measured.txt beside this script (read by layout/tests.rs). Needs gcc and pyenv's
# versions with their headers (`cargo xtask setup`).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=${PYENV_ROOT:-$HOME/.pyenv}/versions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
{
    echo "# offsetof over CPython's headers, by layout/measure/measure.sh: version key offset"
    for minor in 10 11 12 13; do
        dir=$(ls -d "$root"/3.$minor.* | sort -V | tail -n 1)
        inc="$dir/include/python3.$minor"
        echo "# $(basename "$dir")"
        gcc -I"$inc" -I"$inc/internal" "$here/offsets.c" -o "$out/offsets-3.$minor"
        "$out/offsets-3.$minor"
    done
} > "$here/measured.txt"
