#!/usr/bin/env python3
"""schema_check.py FILE - the outputs test_grammar's property test wrote
(one {"schema": ..., "output": "..."} per line) checked by an independent
validator: python3-jsonschema (Draft 2020-12) with the formats as
ernie-doc defines them (a calendar date, an RFC 3339 date-time as Python's
datetime reads it, one @ between non-empty parts, an absolute URI).
Prints "schema_check: N passed, M failed"."""
import datetime
import json
import re
import sys

import jsonschema

fc = jsonschema.FormatChecker(formats=())


@fc.checks("date")
def _date(s):
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return False
    datetime.date.fromisoformat(s)
    return True


@fc.checks("date-time", raises=ValueError)
def _date_time(s):
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(\.\d{1,6})?)"
                     r"(Z|[+-]\d{2}:\d{2})", s)
    if not m:
        return False
    datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return True


@fc.checks("email")
def _email(s):
    local, at, domain = s.partition("@")
    return bool(at and local and domain and "@" not in domain and
                all(domain.split(".")) and all(local.split(".")))


@fc.checks("uri")
def _uri(s):
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s\"<>\\^`{|}]+", s) \
        is not None


def main():
    passed = failed = 0
    with open(sys.argv[1], encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            case = json.loads(line)
            try:
                value = json.loads(case["output"])
                jsonschema.Draft202012Validator(
                    case["schema"], format_checker=fc).validate(value)
                passed += 1
            except (ValueError, jsonschema.ValidationError) as e:
                failed += 1
                print("line %d: %s\n  schema %s\n  output %r" %
                      (n, str(e).splitlines()[0], json.dumps(case["schema"]),
                       case["output"]), file=sys.stderr)
    if passed < 100:
        failed += 1
        print("only %d outputs to check" % passed, file=sys.stderr)
    print("schema_check: %d passed, %d failed" % (passed, failed))


main()
