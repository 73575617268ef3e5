#!/usr/bin/env python3
"""Decides whether a second plan against moto is clean: `check_plan.py PLAN_JSON`.

PLAN_JSON is `terraform show -json` of a plan made right after apply. Every planned change must be
one of the KNOWN_MOTO_DRIFT entries below: an in-place update of that resource touching only the
listed attributes, in the way described. Anything else (another resource, another attribute, a
replacement, a real value change) is drift in our code and fails the check.
"""

import json
import sys


def json_equal(before, after):
    """Same JSON document, whatever the whitespace."""
    try:
        return json.loads(before) == json.loads(after)
    except (TypeError, ValueError):
        return False


def added_block(before, after):
    """The block is configured but the API did not return it."""
    return before in (None, []) and bool(after)


# address -> {attribute: (why moto shows a diff, predicate(before, after) that must hold)}
KNOWN_MOTO_DRIFT = {
    "module.tickwatch.aws_lambda_function.processor": {
        "logging_config": (
            "moto 5.2.5 ignores LoggingConfig in CreateFunction/UpdateFunctionConfiguration and never "
            "returns it, so the configured JSON log format always reads back as absent",
            added_block,
        ),
    },
    "module.tickwatch.aws_sqs_queue.ticks": {
        "redrive_policy": (
            "moto 5.2.5 serialises RedrivePolicy with Python's json.dumps (', ' and ': ' separators); the "
            "provider stores the API string verbatim and compares it with the compact form of the "
            "configuration (which is also what SQS itself returns), so only whitespace differs",
            json_equal,
        ),
    },
}


def main(path):
    with open(path) as f:
        plan = json.load(f)

    problems, tolerated = [], []
    for rc in plan.get("resource_changes", []):
        actions = rc["change"]["actions"]
        if actions in (["no-op"], ["read"]):
            continue
        address = rc["address"]
        if actions != ["update"]:
            problems.append(f"{address}: planned {'/'.join(actions)}")
            continue
        before = rc["change"].get("before") or {}
        after = rc["change"].get("after") or {}
        unknown = rc["change"].get("after_unknown") or {}
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k) or unknown.get(k) is True)
        allowed = KNOWN_MOTO_DRIFT.get(address, {})
        for attribute in changed:
            if attribute in allowed and allowed[attribute][1](before.get(attribute), after.get(attribute)):
                tolerated.append(f"{address}.{attribute}: {allowed[attribute][0]}")
            else:
                problems.append(f"{address}.{attribute}: {json.dumps(before.get(attribute))} -> {json.dumps(after.get(attribute))}")

    for line in tolerated:
        print(f"  known moto drift (tolerated)  {line}")
    for line in problems:
        print(f"  UNEXPECTED CHANGE             {line}")
    if problems:
        print(f"check_plan: {len(problems)} unexpected change(s): the configuration does not converge")
        return 1
    print(f"check_plan: no changes besides {len(tolerated)} known moto drift item(s)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
