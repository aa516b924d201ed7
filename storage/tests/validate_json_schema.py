#!/usr/bin/env python3
"""Validates JSON files against a JSON schema (draft 7): validate_json_schema.py SCHEMA FILE...

Used by storage/tests/tier0_manifest_schema_test.cpp so the manifests are checked by an
independent, well-kept validator (python3-jsonschema from Debian), not only by our own C++.
Prints one line per problem; exit 0 when every file is valid, 1 otherwise, 2 on usage errors.
"""
import json
import sys

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed", file=sys.stderr)
    sys.exit(3)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    bad = 0
    for path in argv[2:]:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in error.path) or "(top)"
            print(f"{path}: {where}: {error.message}")
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
