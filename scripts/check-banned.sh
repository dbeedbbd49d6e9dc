#!/bin/sh
# Refuse functions Scepter does not use (curl's checksrc idea): unbounded string functions,
# atoi-style parsing without error reporting, and malloc outside the allocation wrapper.
set -eu
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.c' -o -name '*.h')
for f in $files; do
    case "$f" in build*/*) continue ;; esac
    if grep -nE '(^|[^_a-zA-Z0-9])(sprintf|vsprintf|strcpy|strcat|atoi|atol|atoll|gets|strtok)[[:space:]]*\(' "$f" \
        | grep -v 'banned-ok'; then
        echo "  ^ $f: banned function (use snprintf, str_copy, str_append, str_to_i64, strtok_r)"
        status=1
    fi
    case "$f" in common/xmalloc.c) continue ;; esac
    if grep -nE '(^|[^_a-zA-Z0-9x])(malloc|calloc|realloc|strdup|strndup)[[:space:]]*\(' "$f" \
        | grep -v 'banned-ok'; then
        echo "  ^ $f: use xmalloc/xcalloc/xrealloc/xstrdup (common/xmalloc.h)"
        status=1
    fi
done
[ $status -eq 0 ] && echo "check-banned: ok"
exit $status
