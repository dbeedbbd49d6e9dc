#!/usr/bin/env python3
"""Extract the facts the profile tests check from Apple's device-management YAML schemas.

    scripts/schema-facts.py [SCHEMA_DIR] [-o OUT]
    scripts/schema-facts.py --declarative [SCHEMA_DIR] [-o OUT]

SCHEMA_DIR is a checkout of github.com/apple/device-management (or its mdm/profiles folder);
without it, $SCEPTER_APPLE_SCHEMAS.  OUT defaults to tests/data/apple-schemas/profile-facts.json.

For each payload type Scepter renders or a test profile carries, the output keeps only what a
checker needs — per key: name, type, required, allowed values (rangelist), format, default,
repetition, the iOS/macOS version it appeared in (or "n/a"), its subkeys, whether Apple's text
lets a string key hold an array of strings — and per payload the iOS/macOS versions.  With
--declarative the same facts come from the declarative/ folder for the declarations, protocol
documents and status items Scepter's Declarative Device Management emits or reads (DDM_TYPES),
into tests/data/apple-schemas/ddm-facts.json.  Titles and prose are dropped.  Scalars are kept as the YAML text
("1024", "true"), the way the checker compares them.  The output is stable (sorted types,
schema key order) so a diff shows a schema change.
"""
import argparse
import json
import os
import sys

try:
    import yaml
except ImportError:
    sys.exit("schema-facts: python3-yaml is missing (apt-get install python3-yaml)")

# TopLevel and CommonPayloadKeys, then every payload type the tests meet.
TYPES = [
    "TopLevel",
    "CommonPayloadKeys",
    "com.apple.mdm",
    "com.apple.security.scep",
    "com.apple.security.pkcs12",
    "com.apple.security.root",
    "com.apple.security.pem",
    "com.apple.security.pkcs1",
    # Linked payloads a SCEP policy carries (profiles/linked.c).
    "com.apple.wifi.managed",
    "com.apple.firstethernet.managed",
    "com.apple.globalethernet.managed",
    "com.apple.vpn.managed",
]
# Apple's prose that lets a <string> key hold an array of strings too (the schema's type line
# cannot say so): com.apple.security.scep's SubjectAltName says "You can specify a single string
# or an array of strings for each key".  Subkeys of a key whose text says this get
# "string_or_array": true.
STRING_OR_ARRAY = "a single string or an array of strings"
OSES = ("iOS", "macOS")

# Declarative Device Management: name -> path under the checkout's declarative/ folder.
DDM_TYPES = {
    "com.apple.asset.credential.scep": "declarations/assets/credential.scep.yaml",
    "com.apple.credential.scep": "declarations/assets/credentials/scep.yaml",
    "com.apple.configuration.security.identity":
        "declarations/configurations/security.identity.yaml",
    "com.apple.asset.credential.certificate": "declarations/assets/credential.certificate.yaml",
    "com.apple.configuration.security.certificate":
        "declarations/configurations/security.certificate.yaml",
    "com.apple.activation.simple": "declarations/activations/simple.yaml",
    "com.apple.management.server-capabilities":
        "declarations/management/server-capabilities.yaml",
    "TokensResponse": "protocol/tokensresponse.yaml",
    "DeclarationItemsResponse": "protocol/declarationitemsresponse.yaml",
    "StatusReport": "protocol/statusreport.yaml",
    "management.declarations": "status/management.declarations.yaml",
    "device.operating-system.version": "status/device.operating-system.version.yaml",
    "device.model.family": "status/device.model.family.yaml",
    "device.operating-system.build-version": "status/device.operating-system.build-version.yaml",
    "com.apple.configuration.management.status-subscriptions":
        "declarations/configurations/management.status-subscriptions.yaml",
}


def os_facts(supported):
    out = {}
    if isinstance(supported, dict):
        for name in OSES:
            v = supported.get(name)
            if isinstance(v, dict) and "introduced" in v:
                out[name] = str(v["introduced"])
    return out


def key_facts(spec, where):
    if not isinstance(spec, dict) or "key" not in spec:
        raise SystemExit("schema-facts: %s: a key spec without 'key'" % where)
    k = {"key": spec["key"]}
    if "type" in spec:
        k["type"] = spec["type"]
    if spec.get("presence") == "required":
        k["required"] = True
    if "rangelist" in spec:
        k["allowed"] = [str(v) for v in spec["rangelist"]]
    if "format" in spec:
        k["format"] = spec["format"]
    if "default" in spec and not isinstance(spec["default"], (list, dict)):
        k["default"] = str(spec["default"])
    rep = spec.get("repetition")
    if isinstance(rep, dict):
        k["repetition"] = {m: int(rep[m]) for m in ("min", "max") if m in rep}
    osf = os_facts(spec.get("supportedOS"))
    if osf:
        k["os"] = osf
    if spec.get("subkeys"):
        k["subkeys"] = [key_facts(s, where + "." + str(spec["key"])) for s in spec["subkeys"]]
        if STRING_OR_ARRAY in " ".join(str(spec.get("content", "")).split()):
            for sub in k["subkeys"]:
                if sub.get("type") == "<string>":
                    sub["string_or_array"] = True
    return k


def payload_facts(path, name):
    with open(path, encoding="utf-8") as f:
        # BaseLoader keeps every scalar as its text, as libyaml's document API does.
        doc = yaml.load(f, Loader=yaml.BaseLoader)
    if not isinstance(doc, dict) or not isinstance(doc.get("payloadkeys"), list):
        raise SystemExit("schema-facts: %s: no payloadkeys list" % path)
    p = {"keys": [key_facts(s, name) for s in doc["payloadkeys"]]}
    payload = doc.get("payload") or {}
    if name not in ("TopLevel", "CommonPayloadKeys"):
        p["os"] = os_facts(payload.get("supportedOS"))
    return p


def declarative(base, output):
    if os.path.isdir(os.path.join(base, "declarative")):
        base = os.path.join(base, "declarative")
    facts = {}
    for name in sorted(DDM_TYPES):
        path = os.path.join(base, DDM_TYPES[name])
        if not os.path.isfile(path):
            sys.exit("schema-facts: %s: no such schema file" % path)
        facts[name] = payload_facts(path, name)
    out = {
        "generator": "scripts/schema-facts.py --declarative",
        "source": "https://github.com/apple/device-management declarative (MIT, Apple Inc.)",
        "declarations": facts,
    }
    text = json.dumps(out, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("schemas", nargs="?", default=os.environ.get("SCEPTER_APPLE_SCHEMAS"))
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--declarative", action="store_true",
                    help="the DDM facts (declarative/) instead of the profile payloads")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()
    if not a.schemas:
        sys.exit("schema-facts: no schema directory: pass it or set SCEPTER_APPLE_SCHEMAS")
    if a.output is None:
        a.output = os.path.join(here, "..", "tests", "data", "apple-schemas",
                                "ddm-facts.json" if a.declarative else "profile-facts.json")
    if a.declarative:
        return declarative(a.schemas, a.output)
    base = a.schemas
    if os.path.isdir(os.path.join(base, "mdm", "profiles")):
        base = os.path.join(base, "mdm", "profiles")
    facts = {}
    for t in TYPES:
        path = os.path.join(base, t + ".yaml")
        if not os.path.isfile(path):
            sys.exit("schema-facts: %s: no such schema file" % path)
        facts[t] = payload_facts(path, t)
    out = {
        "generator": "scripts/schema-facts.py",
        "source": "https://github.com/apple/device-management mdm/profiles (MIT, Apple Inc.)",
        "payloads": facts,
    }
    text = json.dumps(out, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
