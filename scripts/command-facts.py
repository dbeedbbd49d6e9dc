#!/usr/bin/env python3
"""Extract the facts the typed-command tests check from Apple's MDM command schemas.

    scripts/command-facts.py [SCHEMA_DIR] [-o OUT]

SCHEMA_DIR is a checkout of github.com/apple/device-management (or its mdm/commands folder);
without it, $SCEPTER_APPLE_SCHEMAS.  OUT defaults to tests/data/apple-schemas/command-facts.json.

For each command mdm/command_schema.c describes, the output keeps the RequestType and, per
payload key, what scripts/schema-facts.py keeps for profile keys (name, type, required,
allowed values, subkeys); titles and prose are dropped.  Stable output: a diff shows a schema
change.
"""
import argparse
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("schema_facts", os.path.join(HERE, "schema-facts.py"))
schema_facts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(schema_facts)
yaml = schema_facts.yaml

# The schema file of every command mdm/command_schema.c builds (and the ones built by hand).
FILES = [
    "device.lock",
    "device.erase",
    "device.restart",
    "device.shutdown",
    "passcode.clear",
    "information.security",
    "application.installed.list",
    "system.update.available",
    "system.update.schedule",
    "settings",
    "device.configured",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("schemas", nargs="?", default=os.environ.get("SCEPTER_APPLE_SCHEMAS"))
    ap.add_argument("-o", "--output",
                    default=os.path.join(HERE, "..", "tests", "data", "apple-schemas",
                                         "command-facts.json"))
    a = ap.parse_args()
    if not a.schemas:
        sys.exit("command-facts: no schema directory: pass it or set SCEPTER_APPLE_SCHEMAS")
    base = a.schemas
    if os.path.isdir(os.path.join(base, "mdm", "commands")):
        base = os.path.join(base, "mdm", "commands")
    commands = {}
    for name in FILES:
        path = os.path.join(base, name + ".yaml")
        if not os.path.isfile(path):
            sys.exit("command-facts: %s: no such schema file" % path)
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=yaml.BaseLoader)
        rt = (doc.get("payload") or {}).get("requesttype")
        if not rt:
            sys.exit("command-facts: %s: no payload.requesttype" % path)
        keys = doc.get("payloadkeys") or []
        commands[rt] = {"file": "mdm/commands/%s.yaml" % name,
                        "keys": [schema_facts.key_facts(k, rt) for k in keys]}
    out = {
        "generator": "scripts/command-facts.py",
        "source": "https://github.com/apple/device-management mdm/commands (MIT, Apple Inc.)",
        "commands": commands,
    }
    text = json.dumps(out, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
