#!/bin/sh
# ctest schema_facts_current: tests/data/apple-schemas/profile-facts.json must be what
# scripts/schema-facts.py makes from Apple's YAML schemas.  The schemas are not part of the
# repository: the test runs when SCEPTER_APPLE_SCHEMAS names a checkout of
# github.com/apple/device-management, and is skipped (exit 77) otherwise.
set -eu
src=${1:?usage: schema-facts-current.sh SOURCE_DIR}
if [ -z "${SCEPTER_APPLE_SCHEMAS:-}" ]; then
    echo "SKIP: SCEPTER_APPLE_SCHEMAS is not set, so there are no Apple YAML schemas to compare" \
        "tests/data/apple-schemas/profile-facts.json with (set it to a checkout of" \
        "github.com/apple/device-management to run this test)"
    exit 77
fi
if [ ! -d "$SCEPTER_APPLE_SCHEMAS" ]; then
    echo "SKIP: SCEPTER_APPLE_SCHEMAS=$SCEPTER_APPLE_SCHEMAS is not a directory"
    exit 77
fi
tmp=$(mktemp -d /tmp/scepter-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
python3 "$src/scripts/schema-facts.py" "$SCEPTER_APPLE_SCHEMAS" -o "$tmp/facts.json"
if ! diff -u "$src/tests/data/apple-schemas/profile-facts.json" "$tmp/facts.json"; then
    echo "FAIL: tests/data/apple-schemas/profile-facts.json is out of date;" \
        "run scripts/schema-facts.py \"\$SCEPTER_APPLE_SCHEMAS\" and commit the result"
    exit 1
fi
python3 "$src/scripts/schema-facts.py" --declarative "$SCEPTER_APPLE_SCHEMAS" -o "$tmp/ddm.json"
if ! diff -u "$src/tests/data/apple-schemas/ddm-facts.json" "$tmp/ddm.json"; then
    echo "FAIL: tests/data/apple-schemas/ddm-facts.json is out of date;" \
        "run scripts/schema-facts.py --declarative \"\$SCEPTER_APPLE_SCHEMAS\" and commit the result"
    exit 1
fi
echo "profile-facts.json and ddm-facts.json match the schemas in $SCEPTER_APPLE_SCHEMAS"
