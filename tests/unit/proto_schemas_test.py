#!/usr/bin/python3
"""The message schemas against the golden fixtures, so that the JSON Schemas and the C codec
(proto_test.c reads the same fixtures) cannot drift apart.

usage: proto_schemas_test.py <proto/schemas> <tests/fixtures/messages>

Checks, each printed as one "ok"/"FAIL" line:
  - every schema is a valid draft 2020-12 schema whose $id ends with its file name;
  - every maxLength/maxItems/maxProperties/maximum names its C limit in "$comment" and equals
    the #define of that name in proto/include/fg/proto.h;
  - every category has a schema file, at least one good and one bad fixture;
  - every good/<category>-<case>.json is valid against message.schema.json and has that category;
  - every bad/*.json is refused: not strict JSON as the codec reads it (size, UTF-8, depth,
    NaN/Infinity, lone surrogates, not an object) or invalid against message.schema.json.

Needs the jsonschema module: Debian's python3-jsonschema 4.10 (RefResolver) in /usr/bin/python3,
or a newer one with `referencing` (a registry); both are supported. Two deviations of that module from JSON Schema are corrected here: "pattern" gets
ECMA-262's `$`, and "date-time" is checked without the optional rfc3339-validator module. Without it: prints a SKIP line and exits 77.
"""
import json
import os
import re
import sys

try:
    from importlib.metadata import version
    from jsonschema import Draft202012Validator, FormatChecker
    from jsonschema.exceptions import ValidationError
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"SKIP: the jsonschema module is missing ({exc}); apt-get install python3-jsonschema")
    sys.exit(77)

try:  # jsonschema >= 4.18 resolves $ref through `referencing`; older ones through RefResolver
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012
except ImportError:
    Registry = None

SCHEMA_URI = "https://json-schema.org/draft/2020-12/schema"
LIMIT_KEYWORDS = ("maxLength", "maxItems", "maxProperties", "maximum")
DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?"
    r"(Z|[+-]([0-9]{2}):([0-9]{2}))")

failures = 0


def report(ok, what, detail=""):
    global failures
    if not ok:
        failures += 1
    print(f"{'ok  ' if ok else 'FAIL'} {what}{(': ' + detail) if detail else ''}")


def ecma_pattern(validator, pattern, instance, schema):
    """"pattern" with ECMA-262 semantics, as JSON Schema specifies: Python's `$` also matches
    before a final newline, so "<40 hex>\\n" would pass ^[0-9a-f]{40}$ in plain jsonschema while
    every ECMA engine (and the C codec) refuses it."""
    if not validator.is_type(instance, "string"):
        return
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern
    if re.search(anchored, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


# Installed on the class itself, not through validators.extend: every schema here names its
# $schema, and jsonschema picks the registered class again when it follows a $ref to one.
Draft202012Validator.VALIDATORS["pattern"] = ecma_pattern


def read_limits(header):
    limits = {}
    with open(header, encoding="utf-8") as f:
        for m in re.finditer(r"^#define\s+(FG_PROTO_\w+)\s+(\d+)", f.read(), re.M):
            limits[m.group(1)] = int(m.group(2))
    return limits


def days_in_month(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def is_date_time(value):
    """RFC 3339 date-time, the same calendar check as the C codec (no leap second)."""
    if not isinstance(value, str):
        return True
    m = DATE_TIME.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if not 1 <= month <= 12 or not 1 <= day <= days_in_month(year, month):
        return False
    if hour > 23 or minute > 59 or second > 59:
        return False
    if m.group(9) is not None and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return True


def walk(node, path):
    if isinstance(node, dict):
        yield node, path
        for k, v in node.items():
            yield from walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}/{i}")


def check_limits(name, schema, limits):
    for node, path in walk(schema, name):
        for keyword in LIMIT_KEYWORDS:
            if keyword not in node:
                continue
            limit = node.get("$comment", "")
            if limit not in limits:
                report(False, f"{path}/{keyword}", f"$comment does not name a limit of proto.h ({limit!r})")
            elif limits[limit] != node[keyword]:
                report(False, f"{path}/{keyword}",
                       f"{node[keyword]} but {limit} is {limits[limit]} in proto.h")
            else:
                report(True, f"{path}/{keyword} = {limit}")


class NotAccepted(Exception):
    pass


def refuse_constant(name):
    raise NotAccepted(f"{name} is not JSON")


def depth_of(value):
    """Nesting depth as the codec counts it: a scalar is 0, an object or array one more than its
    deepest member."""
    stack, deepest = [(value, 1)], 0
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            deepest = max(deepest, d)
            stack.extend((x, d + 1) for x in v)
    return deepest


def strings_of(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def keys_of(value):
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            yield from v.keys()
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def load_message(path, limits):
    """What the C codec accepts as a JSON message before any schema rule applies."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) > limits["FG_PROTO_MESSAGE_MAX"]:
        raise NotAccepted("larger than FG_PROTO_MESSAGE_MAX")
    try:
        text = raw.decode("utf-8")  # strict: no overlong forms, no surrogates, <= U+10FFFF
        value = json.loads(text, parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotAccepted(str(exc)) from exc
    if not isinstance(value, dict):
        raise NotAccepted("not a JSON object")
    if depth_of(value) > limits["FG_PROTO_DEPTH_MAX"]:
        raise NotAccepted("nested deeper than FG_PROTO_DEPTH_MAX")
    for s in strings_of(value):
        try:
            s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise NotAccepted("a \\u escape is a lone surrogate") from exc
    if any("\0" in k for k in keys_of(value)):
        raise NotAccepted("U+0000 in a member name (json-c would shorten the name)")
    return value


def fixture_category(file_name, categories):
    """good/creation-batch.json -> CREATION: the longest category whose dashed name prefixes it."""
    best = None
    for c in categories:
        prefix = c.lower().replace("_", "-") + "-"
        if file_name.startswith(prefix) and (best is None or len(c) > len(best)):
            best = c
    return best


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    schema_dir, fixture_dir = sys.argv[1], sys.argv[2]
    limits = read_limits(os.path.join(schema_dir, "..", "include", "fg", "proto.h"))
    report("FG_PROTO_MESSAGE_MAX" in limits and "FG_PROTO_DEPTH_MAX" in limits,
           "proto.h defines FG_PROTO_MESSAGE_MAX and FG_PROTO_DEPTH_MAX")
    if failures:
        return 1

    store = {}
    for name in sorted(os.listdir(schema_dir)):
        if not name.endswith(".schema.json"):
            continue
        with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
            schema = json.load(f)
        Draft202012Validator.check_schema(schema)
        report(schema.get("$schema") == SCHEMA_URI and schema.get("$id", "").endswith("/" + name),
               f"{name} is draft 2020-12 with a matching $id")
        check_limits(name, schema, limits)
        store[schema["$id"]] = schema

    by_name = {uri.rsplit("/", 1)[1]: s for uri, s in store.items()}
    categories = by_name["envelope.schema.json"]["$defs"]["category"]["enum"]
    message = by_name["message.schema.json"]
    checker = FormatChecker()
    checker.checks("date-time")(is_date_time)
    if Registry is not None:
        registry = Registry().with_resources(
            (uri, DRAFT202012.create_resource(schema)) for uri, schema in store.items())
        validator = Draft202012Validator(message, registry=registry, format_checker=checker)
    else:
        from jsonschema import RefResolver
        validator = Draft202012Validator(
            message, resolver=RefResolver.from_schema(message, store=store), format_checker=checker)

    good_dir, bad_dir = os.path.join(fixture_dir, "good"), os.path.join(fixture_dir, "bad")
    good, bad = sorted(os.listdir(good_dir)), sorted(os.listdir(bad_dir))
    for c in categories:
        dashed = c.lower().replace("_", "-")
        report(f"{dashed}.schema.json" in by_name, f"{c} has {dashed}.schema.json")
        report(any(fixture_category(n, categories) == c for n in good), f"{c} has a good fixture")
        report(any(fixture_category(n, categories) == c for n in bad), f"{c} has a bad fixture")

    for name in good:
        try:
            value = load_message(os.path.join(good_dir, name), limits)
        except NotAccepted as exc:
            report(False, f"good/{name}", f"not accepted as JSON: {exc}")
            continue
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        expected = fixture_category(name, categories)
        if errors:
            e = errors[0]
            where = "/".join(str(p) for p in e.absolute_path)
            report(False, f"good/{name}", f"{where}: {e.message}")
        elif value.get("category") != expected:
            report(False, f"good/{name}", f"category {value.get('category')} but named for {expected}")
        else:
            report(True, f"good/{name} is valid")

    for name in bad:
        try:
            value = load_message(os.path.join(bad_dir, name), limits)
        except NotAccepted as exc:
            report(True, f"bad/{name} is refused", f"not JSON as the codec reads it: {exc}")
            continue
        errors = list(validator.iter_errors(value))
        report(bool(errors), f"bad/{name} is refused",
               errors[0].message[:120] if errors else "the schemas accept it")

    print(f"{len(good)} good and {len(bad)} bad fixtures, {len(store)} schemas, "
          f"jsonschema {version('jsonschema')}: {failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
