#!/usr/bin/env python3
"""Checks a tickwatch stack through the AWS APIs (the moto emulator in CI, or a real account).

    verify.py deployed  FLAT_OUTPUTS_JSON --team T --cost-center C
        every resource exists with the settings of the system specification
    verify.py destroyed FLAT_OUTPUTS_JSON
        nothing with the stack's suffix is left, and its KMS key is pending deletion

FLAT_OUTPUTS_JSON is the file scripts/flat-outputs writes (cfn-outputs/flat-outputs.json). The
endpoint and credentials come from the usual AWS_* variables (AWS_ENDPOINT_URL for moto). Prints one
line per check and exits 1 if any failed. Needs boto3 (.venv/moto has it).
"""

import argparse
import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

# The settings the module's defaults must produce (see infra/terraform/modules/tickwatch/README.md).
RETENTION_S = 1209600
FUNCTION_TIMEOUT_S = 60
VISIBILITY_TIMEOUT_S = 6 * FUNCTION_TIMEOUT_S
MEMORY_MB = 3072
RESERVED_CONCURRENCY = 5
BATCH_SIZE = 25
MAX_RECEIVE_COUNT = 5
ENV_VAR_NAMES = {
    "ALERTS_TABLE_NAME", "STATE_TABLE_NAME", "ALERTS_TOPIC_ARN", "DEAD_LETTER_QUEUE_URL",
    "HIGH_THRESHOLD", "LOW_THRESHOLD", "ALERT_MODE", "HYSTERESIS", "LOG_LEVEL",
    "RULES_TABLE", "RULES_REFRESH_SECONDS",
}
RULES_REFRESH_SECONDS = "10"
ALERTS_TABLE_ACTIONS = {
    "dynamodb:BatchGetItem",
    "dynamodb:DescribeTable",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
}
STATE_TABLE_ACTIONS = {"dynamodb:DescribeTable", "dynamodb:PutItem"}
# The function and the worker only read the rules (the CLI writes them).
RULES_TABLE_ACTIONS = {"dynamodb:GetItem", "dynamodb:Scan"}
RULES_TABLE_WRITE_ACTIONS = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}


class Checks:
    """Collects named checks; a check that raises counts as failed with the exception as reason."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}{': ' + str(detail) if detail else ''}")

    def run(self, name, fn):
        print(name)
        try:
            fn()
        except (ClientError, KeyError, IndexError, TypeError, ValueError) as error:
            self.check(f"{name}: no error reading it", False, repr(error))


def client(service):
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return boto3.client(service, endpoint_url=endpoint, region_name=region)


def as_set(value):
    return set(value) if isinstance(value, list) else {value}


def grants_by_resource(doc):
    """{resource ARN: set of actions} of a policy document (a dict or its JSON text)."""
    doc = json.loads(doc) if isinstance(doc, str) else doc
    grants = {}
    for s in doc["Statement"]:
        for resource in as_set(s["Resource"]):
            grants.setdefault(resource, set()).update(as_set(s["Action"]))
    return grants


def verify_deployed(out, team, cost_center, c):
    suffix = out["environment_suffix"]
    key_arn = out["kms_key_arn"]
    expected_tags = {"Environment": suffix, "Team": team, "CostCenter": cost_center}

    def has_tags(name, tags):
        missing = {k: v for k, v in expected_tags.items() if tags.get(k) != v}
        c.check(f"{name} tagged Environment/Team/CostCenter", not missing, f"got {tags}")

    sqs = client("sqs")

    def queues():
        attrs = sqs.get_queue_attributes(QueueUrl=out["queue_url"], AttributeNames=["All"])["Attributes"]
        c.check("tick queue named tickwatch-ticks-<suffix>", attrs["QueueArn"].endswith(f":tickwatch-ticks-{suffix}"))
        c.check("tick queue retention 14 days", int(attrs["MessageRetentionPeriod"]) == RETENTION_S, attrs["MessageRetentionPeriod"])
        c.check("tick queue visibility timeout 360 s (6x function timeout)", int(attrs["VisibilityTimeout"]) == VISIBILITY_TIMEOUT_S, attrs["VisibilityTimeout"])
        c.check("tick queue encrypted with the stack key", attrs.get("KmsMasterKeyId") == key_arn, attrs.get("KmsMasterKeyId"))
        redrive = json.loads(attrs["RedrivePolicy"])
        c.check("tick queue redrives to the DLQ", redrive["deadLetterTargetArn"] == out["dead_letter_queue_arn"], redrive)
        c.check("tick queue maxReceiveCount 5", int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT, redrive)
        has_tags("tick queue", sqs.list_queue_tags(QueueUrl=out["queue_url"]).get("Tags", {}))

        dlq = sqs.get_queue_attributes(QueueUrl=out["dead_letter_queue_url"], AttributeNames=["All"])["Attributes"]
        c.check("DLQ named tickwatch-ticks-dlq-<suffix>", dlq["QueueArn"].endswith(f":tickwatch-ticks-dlq-{suffix}"))
        c.check("DLQ retention 14 days", int(dlq["MessageRetentionPeriod"]) == RETENTION_S, dlq["MessageRetentionPeriod"])
        c.check("DLQ encrypted with the stack key", dlq.get("KmsMasterKeyId") == key_arn, dlq.get("KmsMasterKeyId"))
        has_tags("DLQ", sqs.list_queue_tags(QueueUrl=out["dead_letter_queue_url"]).get("Tags", {}))

    dynamodb = client("dynamodb")

    def table(label, name, key_schema, expected_name):
        def run():
            c.check(f"{label} named {expected_name.replace(suffix, '<suffix>')}", name == expected_name, name)
            t = dynamodb.describe_table(TableName=name)["Table"]
            schema = {k["AttributeName"]: k["KeyType"] for k in t["KeySchema"]}
            types = {a["AttributeName"]: a["AttributeType"] for a in t["AttributeDefinitions"]}
            c.check(f"{label} key schema {key_schema}", schema == key_schema, schema)
            c.check(f"{label} key attributes are strings", all(types.get(k) == "S" for k in key_schema), types)
            c.check(f"{label} PAY_PER_REQUEST", t.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", t.get("BillingModeSummary"))
            c.check(f"{label} deletion protection off", t.get("DeletionProtectionEnabled") is False, t.get("DeletionProtectionEnabled"))
            sse = t.get("SSEDescription", {})
            c.check(f"{label} SSE with the stack key", sse.get("Status") == "ENABLED" and sse.get("SSEType") == "KMS" and sse.get("KMSMasterKeyArn") == key_arn, sse)
            pitr = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
            status = pitr.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
            c.check(f"{label} point-in-time recovery enabled", status == "ENABLED", status)
            tags = {t["Key"]: t["Value"] for t in dynamodb.list_tags_of_resource(ResourceArn=t["TableArn"]).get("Tags", [])}
            has_tags(label, tags)
        return run

    sns = client("sns")

    def topic():
        attrs = sns.get_topic_attributes(TopicArn=out["alerts_topic_arn"])["Attributes"]
        c.check("topic named tickwatch-alerts-<suffix>", out["alerts_topic_arn"].endswith(f":tickwatch-alerts-{suffix}"))
        c.check("topic encrypted with the stack key", attrs.get("KmsMasterKeyId") == key_arn, attrs.get("KmsMasterKeyId"))
        tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=out["alerts_topic_arn"]).get("Tags", [])}
        has_tags("topic", tags)

    lam = client("lambda")

    def function():
        fn = lam.get_function(FunctionName=out["function_name"])
        cfg = fn["Configuration"]
        c.check("function named tickwatch-processor-<suffix>", cfg["FunctionName"] == f"tickwatch-processor-{suffix}")
        c.check("runtime provided.al2023, handler bootstrap", cfg["Runtime"] == "provided.al2023" and cfg["Handler"] == "bootstrap", (cfg["Runtime"], cfg["Handler"]))
        c.check("architecture arm64", cfg["Architectures"] == ["arm64"], cfg["Architectures"])
        c.check("memory 3072 MB", cfg["MemorySize"] == MEMORY_MB, cfg["MemorySize"])
        c.check("timeout 60 s", cfg["Timeout"] == FUNCTION_TIMEOUT_S, cfg["Timeout"])
        c.check("environment encrypted with the stack key", cfg.get("KMSKeyArn") == key_arn, cfg.get("KMSKeyArn"))
        c.check("runs as the processor role", cfg["Role"] == out["function_role_arn"], cfg["Role"])
        env = cfg.get("Environment", {}).get("Variables", {})
        c.check("environment has exactly the variables the function reads", set(env) == ENV_VAR_NAMES, sorted(env))
        c.check("environment points at this stack", env.get("ALERTS_TABLE_NAME") == out["alerts_table_name"] and env.get("STATE_TABLE_NAME") == out["state_table_name"] and env.get("ALERTS_TOPIC_ARN") == out["alerts_topic_arn"] and env.get("DEAD_LETTER_QUEUE_URL") == out["dead_letter_queue_url"], env)
        c.check("RULES_TABLE names the rules table", env.get("RULES_TABLE") == out["rules_table_name"] == f"tickwatch-rules-{suffix}", (env.get("RULES_TABLE"), out.get("rules_table_name")))
        c.check("RULES_REFRESH_SECONDS defaults to 10", env.get("RULES_REFRESH_SECONDS") == RULES_REFRESH_SECONDS, env.get("RULES_REFRESH_SECONDS"))
        c.check("default thresholds, mode and hysteresis", (env.get("HIGH_THRESHOLD"), env.get("LOW_THRESHOLD"), env.get("ALERT_MODE"), env.get("HYSTERESIS"), env.get("LOG_LEVEL")) == ("150", "50", "cross", "0", "info"), env)
        reserved = lam.get_function_concurrency(FunctionName=out["function_name"]).get("ReservedConcurrentExecutions")
        c.check("reserved concurrency 5", reserved == RESERVED_CONCURRENCY, reserved)
        has_tags("function", lam.list_tags(Resource=cfg["FunctionArn"]).get("Tags", {}))

    def event_source_mapping():
        # Filtered by queue: moto matches the FunctionName filter only against the exact string the
        # mapping was created with (here the ARN), where AWS also accepts the name.
        mappings = lam.list_event_source_mappings(EventSourceArn=out["queue_arn"])["EventSourceMappings"]
        c.check("exactly one event source mapping on the tick queue", len(mappings) == 1, len(mappings))
        m = mappings[0]
        c.check("mapping feeds the processor", m["FunctionArn"] == out["function_arn"] and m["UUID"] == out["event_source_mapping_uuid"], m["FunctionArn"])
        c.check("batch size 25", m["BatchSize"] == BATCH_SIZE, m["BatchSize"])
        c.check("batching window >= 1 s", (m.get("MaximumBatchingWindowInSeconds") or 0) >= 1, m.get("MaximumBatchingWindowInSeconds"))
        c.check("ReportBatchItemFailures", m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], m.get("FunctionResponseTypes"))
        c.check("scaling maximum concurrency 5", (m.get("ScalingConfig") or {}).get("MaximumConcurrency") == 5, m.get("ScalingConfig"))

    cloudwatch = client("cloudwatch")

    def alarms():
        names = out["alarm_names"].split(",")
        expected = [f"tickwatch-error-rate-{suffix}", f"tickwatch-dlq-not-empty-{suffix}", f"tickwatch-oldest-tick-age-{suffix}"]
        c.check("alarm names", names == expected, names)
        found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=expected)["MetricAlarms"]}
        c.check("all three alarms exist", set(found) == set(expected), sorted(found))
        error_rate = found[expected[0]]
        c.check("error rate: > 1 over 1 period, missing data not breaching", (error_rate["Threshold"], error_rate["ComparisonOperator"], error_rate["EvaluationPeriods"], error_rate.get("TreatMissingData")) == (1.0, "GreaterThanThreshold", 1, "notBreaching"), error_rate)
        metrics = {m["Id"]: m for m in error_rate.get("Metrics", [])}
        c.check("error rate = 100 * errors / invocations", metrics.get("error_rate", {}).get("Expression") == "100 * errors / invocations", metrics.get("error_rate"))
        for metric_id, metric_name in (("errors", "Errors"), ("invocations", "Invocations")):
            stat = metrics.get(metric_id, {}).get("MetricStat", {})
            dims = {d["Name"]: d["Value"] for d in stat.get("Metric", {}).get("Dimensions", [])}
            c.check(f"error rate uses Sum of {metric_name} over 300 s for the function", stat.get("Metric", {}).get("MetricName") == metric_name and stat.get("Period") == 300 and stat.get("Stat") == "Sum" and dims.get("FunctionName") == out["function_name"], stat)
        dlq = found[expected[1]]
        dims = {d["Name"]: d["Value"] for d in dlq.get("Dimensions", [])}
        c.check("DLQ alarm: visible messages of the DLQ > 0", dlq.get("MetricName") == "ApproximateNumberOfMessagesVisible" and dims.get("QueueName") == f"tickwatch-ticks-dlq-{suffix}" and dlq["Threshold"] == 0 and dlq["ComparisonOperator"] == "GreaterThanThreshold", dlq)
        age = found[expected[2]]
        dims = {d["Name"]: d["Value"] for d in age.get("Dimensions", [])}
        c.check("age alarm: oldest tick of the queue > 300 s", age.get("MetricName") == "ApproximateAgeOfOldestMessage" and dims.get("QueueName") == f"tickwatch-ticks-{suffix}" and age["Threshold"] == 300 and age["ComparisonOperator"] == "GreaterThanThreshold", age)
        for name in expected:
            tags = {t["Key"]: t["Value"] for t in cloudwatch.list_tags_for_resource(ResourceARN=found[name]["AlarmArn"]).get("Tags", [])}
            has_tags(f"alarm {name}", tags)

    kms = client("kms")

    def key():
        meta = kms.describe_key(KeyId=key_arn)["KeyMetadata"]
        c.check("key enabled and customer-managed", meta["KeyState"] == "Enabled" and meta["KeyManager"] == "CUSTOMER", (meta["KeyState"], meta["KeyManager"]))
        rotation = kms.get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"]
        c.check("key rotation on", rotation is True, rotation)
        aliases = [a["AliasName"] for a in kms.list_aliases(KeyId=meta["KeyId"])["Aliases"]]
        c.check("alias alias/tickwatch-<suffix>", f"alias/tickwatch-{suffix}" in aliases, aliases)
        policy = json.loads(kms.get_key_policy(KeyId=key_arn, PolicyName="default")["Policy"])
        sids = {s.get("Sid") for s in policy["Statement"]}
        c.check("key policy: root, processor, messaging, logs, alarms", {"AccountAdministration", "ProcessorUse", "MessagingServices", "CloudWatchLogs", "CloudWatchAlarmActions"} <= sids, sids)
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_arn).get("Tags", [])}
        has_tags("key", tags)

    logs = client("logs")

    def log_group():
        groups = [g for g in logs.describe_log_groups(logGroupNamePrefix=out["log_group_name"])["logGroups"] if g["logGroupName"] == out["log_group_name"]]
        c.check("log group /aws/lambda/tickwatch-processor-<suffix> exists", len(groups) == 1 and out["log_group_name"] == f"/aws/lambda/tickwatch-processor-{suffix}", out["log_group_name"])
        c.check("log group retention 30 days", groups[0].get("retentionInDays") == 30, groups[0].get("retentionInDays"))
        c.check("log group encrypted with the stack key", groups[0].get("kmsKeyId") == key_arn, groups[0].get("kmsKeyId"))

    iam = client("iam")

    def role():
        role_name = out["function_role_arn"].rsplit("/", 1)[1]
        r = iam.get_role(RoleName=role_name)["Role"]
        trust = r["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        principals = [s["Principal"].get("Service") for s in trust["Statement"]]
        c.check("role trusted by lambda.amazonaws.com only", principals == ["lambda.amazonaws.com"], principals)
        names = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        c.check("role has one inline policy", len(names) == 1, names)
        attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
        c.check("role has no managed policies", attached == [], attached)
        grants = grants_by_resource(iam.get_role_policy(RoleName=role_name, PolicyName=names[0])["PolicyDocument"])
        c.check("no statement on resource *", "*" not in grants, sorted(grants))
        log_group_arn = logs.describe_log_groups(logGroupNamePrefix=out["log_group_name"])["logGroups"][0]["arn"].removesuffix(":*")
        expected = {
            out["queue_arn"]: {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
            out["dead_letter_queue_arn"]: {"sqs:GetQueueAttributes", "sqs:SendMessage"},
            out["alerts_table_arn"]: ALERTS_TABLE_ACTIONS,
            out["state_table_arn"]: STATE_TABLE_ACTIONS,
            out["rules_table_arn"]: RULES_TABLE_ACTIONS,
            out["alerts_topic_arn"]: {"sns:GetTopicAttributes", "sns:Publish"},
            key_arn: {"kms:Decrypt", "kms:GenerateDataKey"},
            log_group_arn: {"logs:CreateLogStream", "logs:PutLogEvents"},
            f"{log_group_arn}:*": {"logs:CreateLogStream", "logs:PutLogEvents"},
        }
        c.check("role policy grants exactly the specified actions per resource", grants == expected, {k: sorted(v) for k, v in grants.items()})
        rules = grants.get(out["rules_table_arn"], set())
        c.check("role only reads the rules table (GetItem, Scan; no writes)", rules == RULES_TABLE_ACTIONS and not rules & RULES_TABLE_WRITE_ACTIONS, sorted(rules))
        tags = {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=role_name).get("Tags", [])}
        has_tags("role", tags)

    def dashboard():
        name = out.get("dashboard_name")
        c.check("dashboard tickwatch-<suffix>", name == f"tickwatch-{suffix}", name)
        body = json.loads(cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"])
        titles = [w["properties"]["title"] for w in body["widgets"]]
        c.check("dashboard has its seven widgets", len(titles) == 7, titles)
        text = json.dumps(body)
        for needle in ("TicksProcessed", "TicksRejectedByReason", f"tickwatch-ticks-dlq-{suffix}", '"p99"'):
            c.check(f"dashboard charts {needle}", needle in text, needle)

    def filtered_subscription():
        sns = client("sns")
        subscriptions = sns.list_subscriptions_by_topic(TopicArn=out["alerts_topic_arn"])["Subscriptions"]
        probe = [s for s in subscriptions if s["Endpoint"].endswith(f"tickwatch-filter-probe-{suffix}")]
        c.check("the filtered subscription exists", len(probe) == 1, subscriptions)
        attributes = sns.get_subscription_attributes(SubscriptionArn=probe[0]["SubscriptionArn"])["Attributes"]
        c.check("its filter policy reached SNS", json.loads(attributes.get("FilterPolicy", "{}")) == {"symbol": ["FILTERPROBE"], "kind": ["HIGH"]}, attributes.get("FilterPolicy"))
        c.check("it filters on message attributes", attributes.get("FilterPolicyScope", "MessageAttributes") == "MessageAttributes", attributes.get("FilterPolicyScope"))

    def worker_role():
        arn = out.get("worker_role_arn")
        name = f"tickwatch-worker-{suffix}"
        role = iam.get_role(RoleName=name)["Role"]
        c.check("worker role tickwatch-worker-<suffix>", role["Arn"] == arn, (role["Arn"], arn))
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        c.check("worker role trusts ECS tasks only", trust["Statement"][0]["Principal"]["Service"] in ("ecs-tasks.amazonaws.com", ["ecs-tasks.amazonaws.com"]), trust)
        policy = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
        policy = json.loads(policy) if isinstance(policy, str) else policy
        sids = [s["Sid"] for s in policy["Statement"]]
        c.check("worker policy: the function's grants without its logs", "WriteLogs" not in sids and {"ConsumeTicks", "WriteAlerts", "ReadRules", "PublishAlerts", "UseStackKey"} <= set(sids), sids)
        rules = grants_by_resource(policy).get(out["rules_table_arn"], set())
        c.check("worker only reads the rules table (GetItem, Scan; no writes)", rules == RULES_TABLE_ACTIONS and not rules & RULES_TABLE_WRITE_ACTIONS, sorted(rules))

    c.run("SQS queues", queues)
    c.run("DynamoDB alerts table", table("alerts table", out["alerts_table_name"], {"symbol": "HASH", "timestamp": "RANGE"}, f"tickwatch-alerts-{suffix}"))
    c.run("DynamoDB state table", table("state table", out["state_table_name"], {"symbol": "HASH"}, f"tickwatch-state-{suffix}"))
    c.run("DynamoDB rules table", table("rules table", out["rules_table_name"], {"rule_id": "HASH"}, f"tickwatch-rules-{suffix}"))
    c.run("SNS topic", topic)
    c.run("Lambda function", function)
    c.run("Event source mapping", event_source_mapping)
    c.run("CloudWatch alarms", alarms)
    c.run("KMS key", key)
    c.run("Log group", log_group)
    c.run("IAM role", role)
    c.run("Dashboard", dashboard)
    c.run("Filtered subscription", filtered_subscription)
    c.run("Worker role", worker_role)


def verify_destroyed(out, c):
    suffix = out["environment_suffix"]
    mine = lambda name: name.startswith("tickwatch-") and name.endswith(f"-{suffix}")  # noqa: E731

    def leftovers():
        urls = client("sqs").list_queues(QueueNamePrefix="tickwatch-").get("QueueUrls", [])
        c.check("no queues left", not [u for u in urls if mine(u.rsplit("/", 1)[1])], urls)
        tables = client("dynamodb").list_tables()["TableNames"]
        c.check("no tables left", not [t for t in tables if mine(t)], tables)
        c.check("rules table gone", out["rules_table_name"] not in tables, tables)
        topics = [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]
        c.check("no topics left", not [t for t in topics if mine(t.rsplit(":", 1)[1])], topics)
        lam = client("lambda")
        functions = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
        c.check("no functions left", not [f for f in functions if mine(f)], functions)
        mappings = [m for m in lam.list_event_source_mappings()["EventSourceMappings"] if m.get("EventSourceArn") == out["queue_arn"]]
        c.check("no event source mappings left", not mappings, mappings)
        alarms = [a["AlarmName"] for a in client("cloudwatch").describe_alarms(AlarmNamePrefix="tickwatch-")["MetricAlarms"]]
        c.check("no alarms left", not [a for a in alarms if mine(a)], alarms)
        groups = [g["logGroupName"] for g in client("logs").describe_log_groups(logGroupNamePrefix=out["log_group_name"])["logGroups"]]
        c.check("no log group left", out["log_group_name"] not in groups, groups)
        roles = [r["RoleName"] for r in client("iam").list_roles()["Roles"]]
        c.check("no role left", not [r for r in roles if mine(r)], roles)
        dashboards = [d["DashboardName"] for d in client("cloudwatch").list_dashboards(DashboardNamePrefix="tickwatch-")["DashboardEntries"]]
        c.check("no dashboard left", f"tickwatch-{suffix}" not in dashboards, dashboards)
        kms = client("kms")
        state = kms.describe_key(KeyId=out["kms_key_arn"])["KeyMetadata"]["KeyState"]
        c.check("KMS key pending deletion", state == "PendingDeletion", state)
        aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
        c.check("no key alias left", f"alias/tickwatch-{suffix}" not in aliases, aliases)

    c.run("Leftovers after destroy", leftovers)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["deployed", "destroyed"])
    parser.add_argument("outputs", help="flat outputs JSON (cfn-outputs/flat-outputs.json)")
    parser.add_argument("--team", help="expected Team tag (deployed mode)")
    parser.add_argument("--cost-center", help="expected CostCenter tag (deployed mode)")
    args = parser.parse_args()
    with open(args.outputs) as f:
        out = json.load(f)

    c = Checks()
    if args.mode == "deployed":
        if not args.team or not args.cost_center:
            parser.error("deployed mode needs --team and --cost-center")
        verify_deployed(out, args.team, args.cost_center, c)
    else:
        verify_destroyed(out, c)
    print(f"verify {args.mode}: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed or not c.passed else 0


if __name__ == "__main__":
    sys.exit(main())
