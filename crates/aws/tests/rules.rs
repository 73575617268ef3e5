//! The rules table against the emulator: [`DynamoRuleStore`] (version, commit and load round
//! trips, conflicts, invalid items, changes split over several transactions) and a deployment
//! that keeps its rules current with it, counting what that costs in DynamoDB calls through the
//! fault proxy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use tickwatch_aws::deploy::variables::{RULES_REFRESH_SECONDS, RULES_TABLE};
use tickwatch_aws::testing::{
    Exchange, Fault, FaultProxy, Moto, Service, create_queue, create_topic, fresh_rule_store,
    fresh_store, scan_items, unique_name,
};
use tickwatch_aws::{
    AwsError, ConnectError, Deployment, DynamoRuleStore, Resources, RuleSettings, RulesSource,
    StartupPolicy, TransientCheckFailure,
};
use tickwatch_core::ports::{Classify, ErrorClass, RuleStore};
use tickwatch_core::retry::RetryPolicy;
use tickwatch_core::rules::{Rule, RuleDoc, RuleId};
use tickwatch_core::testing::ManualClock;
use tickwatch_core::{Outcome, Timestamp};

const T0_MS: i64 = 1_795_703_400_000; // 2026-11-26T14:30:00Z

/// Rule `id`: AAPL, `condition`, firing on every tick.
fn rule(id: &str, condition: &str) -> Rule {
    tickwatch_core::testing::rule(&format!(
        r#"{{"id":"{id}","symbols":"AAPL","condition":"{condition}","fire":"every"}}"#
    ))
}

fn ids(rules: &[Rule]) -> Vec<String> {
    rules.iter().map(|r| r.id().to_string()).collect()
}

async fn store() -> DynamoRuleStore {
    fresh_rule_store(&Moto::shared().clients().await.dynamodb).await
}

#[tokio::test]
async fn a_table_never_written_has_no_version_and_no_rules() {
    let store = store().await;
    assert_eq!(store.rules_version().await.expect("reads"), None);
    assert_eq!(store.load_rules().await.expect("reads"), None);
}

#[tokio::test]
async fn committed_rules_load_back_exactly_and_each_commit_moves_the_version_by_one() {
    let store = store().await;
    let (a, b) = (rule("aapl-200", "above 200"), rule("aapl-90", "below 90"));
    assert!(
        store
            .commit_rules(None, &[a.clone(), b.clone()], &[])
            .await
            .expect("commits")
    );
    assert_eq!(store.rules_version().await.expect("reads"), Some(1));
    let loaded = store.load_rules().await.expect("reads").expect("written");
    assert_eq!(loaded.version, 1);
    assert_eq!(loaded.rules, [a.clone(), b.clone()], "sorted by id");
    assert!(loaded.invalid.is_empty());

    // Replace one, remove the other.
    let edited = rule("aapl-200", "above 210").with_version(2);
    assert!(
        store
            .commit_rules(Some(1), std::slice::from_ref(&edited), &[b.id()])
            .await
            .expect("commits")
    );
    let loaded = store.load_rules().await.expect("reads").expect("written");
    assert_eq!((loaded.version, loaded.rules), (2, vec![edited.clone()]));

    // The items as people see them: the definition is the rule's JSON, the version beside it.
    let client = Moto::shared().clients().await.dynamodb;
    let items = scan_items(&client, store.table()).await;
    let by_id: HashMap<String, &HashMap<String, AttributeValue>> = items
        .iter()
        .map(|i| (i["rule_id"].as_s().expect("S").clone(), i))
        .collect();
    assert_eq!(by_id.len(), 2, "the rule and the version item");
    assert_eq!(by_id["#version"]["version"], AttributeValue::N("2".into()));
    let item = by_id["aapl-200"];
    assert_eq!(item["version"], AttributeValue::N("2".into()));
    let definition = item["definition"].as_s().expect("S");
    assert_eq!(
        RuleDoc::from_json(definition).expect("a rule's JSON"),
        *edited.doc()
    );
    // An empty change still moves the version (nothing else).
    assert!(
        store
            .commit_rules(Some(2), &[], &[])
            .await
            .expect("commits")
    );
    assert_eq!(store.rules_version().await.expect("reads"), Some(3));
}

#[tokio::test]
async fn a_commit_from_a_version_that_moved_writes_nothing_and_says_so() {
    let store = store().await;
    let a = rule("a", "above 1");
    assert!(
        store
            .commit_rules(None, std::slice::from_ref(&a), &[])
            .await
            .expect("commits")
    );
    let b = rule("b", "above 2");
    for expected in [None, Some(0), Some(2)] {
        assert!(
            !store
                .commit_rules(expected, std::slice::from_ref(&b), &[a.id()])
                .await
                .expect("answers"),
            "from {expected:?}"
        );
    }
    let loaded = store.load_rules().await.expect("reads").expect("written");
    assert_eq!(
        (loaded.version, ids(&loaded.rules)),
        (1, vec!["a".to_owned()])
    );
}

#[tokio::test]
async fn invalid_items_are_listed_with_what_is_wrong_and_the_valid_ones_load() {
    let store = store().await;
    let good = rule("good", "above 200");
    assert!(
        store
            .commit_rules(None, std::slice::from_ref(&good), &[])
            .await
            .expect("commits")
    );
    let client = Moto::shared().clients().await.dynamodb;
    let raw: [(&str, Option<&str>); 4] = [
        ("broken-json", Some("{not json")),
        (
            "bad-condition",
            Some(r#"{"id":"bad-condition","symbols":"AAPL","condition":"beside 5"}"#),
        ),
        ("no-definition", None),
        (
            "wrong-id",
            Some(r#"{"id":"other","symbols":"AAPL","condition":"above 5"}"#),
        ),
    ];
    for (id, definition) in raw {
        let mut put = client
            .put_item()
            .table_name(store.table())
            .item("rule_id", AttributeValue::S(id.into()));
        if let Some(definition) = definition {
            put = put.item("definition", AttributeValue::S(definition.into()));
        }
        put.send().await.expect("PutItem");
    }
    let loaded = store
        .load_rules()
        .await
        .expect("one bad rule never fails the load")
        .expect("written");
    assert_eq!(loaded.rules, [good]);
    let invalid: Vec<(String, String)> = loaded
        .invalid
        .iter()
        .map(|i| (i.id.clone(), i.error.location.clone()))
        .collect();
    assert_eq!(
        invalid,
        [
            ("bad-condition".to_owned(), "condition".to_owned()),
            ("broken-json".to_owned(), "rule".to_owned()),
            ("no-definition".to_owned(), "definition".to_owned()),
            ("wrong-id".to_owned(), "id".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_change_of_250_rules_is_committed_in_three_transactions() {
    let clients = Moto::shared().clients().await;
    let proxy = FaultProxy::in_front_of(Moto::shared()).await;
    let proxied = proxy.clients().await;
    let table = fresh_rule_store(&clients.dynamodb).await;
    let store = DynamoRuleStore::new(proxied.dynamodb.clone(), table.table());
    let rules: Vec<Rule> = (0..250)
        .map(|i| rule(&format!("r{i:03}"), &format!("above {}", 100 + i)))
        .collect();
    assert!(
        store
            .commit_rules(None, &rules, &[])
            .await
            .expect("commits")
    );
    assert_eq!(
        proxy.requests(Service::DynamoDb, Some("TransactWriteItems")),
        3,
        "99 + 99 + 52 writes"
    );
    assert_eq!(
        store.rules_version().await.expect("reads"),
        Some(3),
        "one step per part"
    );
    let loaded = store.load_rules().await.expect("reads").expect("written");
    assert_eq!(loaded.rules, rules);

    // Removing them all takes three parts too, from version 3 to 6.
    let all: Vec<RuleId> = rules.iter().map(Rule::id).collect();
    assert!(
        store
            .commit_rules(Some(3), &[], &all)
            .await
            .expect("commits")
    );
    let loaded = store.load_rules().await.expect("reads").expect("written");
    assert_eq!((loaded.version, loaded.rules.len()), (6, 0));
}

/// Another writer commits while a big change is between two parts: the first part is written,
/// the second finds the version moved, and the error says so (and that re-running is safe).
#[tokio::test]
async fn a_writer_that_comes_between_two_parts_interrupts_the_change_and_it_says_how_far_it_got() {
    let clients = Moto::shared().clients().await;
    let proxy = FaultProxy::in_front_of(Moto::shared()).await;
    let proxied = proxy.clients().await;
    let direct = fresh_rule_store(&clients.dynamodb).await;
    let store = DynamoRuleStore::new(proxied.dynamodb.clone(), direct.table());
    // The first part goes through; the second is held on its way while the other writer commits.
    proxy.inject(
        Service::DynamoDb,
        Some("TransactWriteItems"),
        Fault::SlowAnswer { delay_ms: 0 },
        1,
    );
    proxy.inject(
        Service::DynamoDb,
        Some("TransactWriteItems"),
        Fault::SlowRequest { delay_ms: 1_500 },
        1,
    );
    let rules: Vec<Rule> = (0..120)
        .map(|i| rule(&format!("r{i:03}"), "above 1"))
        .collect();
    let import = tokio::spawn(async move { store.commit_rules(None, &rules, &[]).await });
    let second_part_held = proxy
        .wait_until(Duration::from_secs(30), |log: &[Exchange]| {
            log.iter()
                .filter(|e| e.operation == "TransactWriteItems")
                .count()
                == 2
        })
        .await;
    assert!(second_part_held, "the import reached its second part");
    assert!(
        direct
            .commit_rules(Some(1), &[rule("other", "below 5")], &[])
            .await
            .expect("the other writer commits")
    );
    let error = import
        .await
        .expect("the import task ends")
        .expect_err("interrupted");
    assert!(matches!(error, AwsError::Interrupted { .. }), "{error}");
    assert_eq!(error.class(), ErrorClass::Permanent);
    let text = error.to_string();
    assert!(
        text.contains("another writer changed the rules")
            && text.contains("parts 1-1 of 2 are written")
            && text.contains("re-running the change is safe"),
        "{text}"
    );
    let loaded = direct.load_rules().await.expect("reads").expect("written");
    assert_eq!(loaded.version, 2);
    assert_eq!(
        loaded.rules.len(),
        99 + 1,
        "the first part and the other writer's rule"
    );
}

// ---------------------------------------------------------------------------------------------
// A deployment with a rules table

struct Rig {
    proxy: FaultProxy,
    rules: DynamoRuleStore,
    resources: Resources,
}

impl Rig {
    async fn create() -> Rig {
        let clients = Moto::shared().clients().await;
        let proxy = FaultProxy::in_front_of(Moto::shared()).await;
        let tables = fresh_store(&clients.dynamodb).await;
        let rules = fresh_rule_store(&clients.dynamodb).await;
        let topic = create_topic(&clients.sns, &unique_name("alerts")).await;
        let dlq = create_queue(&clients.sqs, &unique_name("dlq"), &[]).await;
        let resources = Resources::new(tables.alerts_table(), tables.state_table(), &topic, &dlq)
            .expect("valid resources");
        Rig {
            proxy,
            rules,
            resources,
        }
    }

    fn settings(&self, table: &str) -> RuleSettings {
        let vars = HashMap::from([
            (RULES_TABLE, table.to_owned()),
            (RULES_REFRESH_SECONDS, "10".to_owned()),
        ]);
        RuleSettings::from_variables(|name| vars.get(name).cloned()).expect("valid settings")
    }

    async fn connect(
        &self,
        table: &str,
        clock: Arc<ManualClock>,
    ) -> Result<Deployment<Arc<ManualClock>>, ConnectError> {
        let policy = StartupPolicy {
            transient_check_failure: TransientCheckFailure::Warn,
            retry: RetryPolicy::new(2, 10, 20).expect("valid"),
            jitter_seed: 5,
        };
        Deployment::connect(
            &self.proxy.clients().await,
            &self.resources,
            &self.settings(table),
            &policy,
            clock,
        )
        .await
    }

    /// DynamoDB requests about the rules table so far, by operation.
    fn rules_calls(&self) -> Vec<String> {
        let table = format!("\"{}\"", self.rules.table());
        self.proxy
            .log()
            .iter()
            .filter(|e| e.service == Service::DynamoDb)
            .filter(|e| String::from_utf8_lossy(&e.body).contains(&table))
            .map(|e| e.operation.clone())
            .collect()
    }
}

/// One batch as the function and the worker run it: rules brought up to date, then the batch
/// (one tick of AAPL at `price`, `second` seconds after T0). The rule ids of its new alerts.
async fn batch(deployment: &Deployment<Arc<ManualClock>>, price: f64, second: i64) -> Vec<String> {
    deployment.rules.before_batch(&deployment.pipeline).await;
    let body = format!(
        r#"{{"symbol":"AAPL","price":{price},"timestamp":{}}}"#,
        T0_MS + second * 1000
    );
    let report = deployment.pipeline.process(vec![("m", body)], None).await;
    match &report.outcomes[0].1 {
        Outcome::Accepted(accepted) => accepted
            .new_alerts()
            .map(|alert| alert.rule_id.to_string())
            .collect(),
        other => panic!("not accepted: {other:?}"),
    }
}

fn in_force(deployment: &Deployment<Arc<ManualClock>>) -> Vec<String> {
    deployment
        .pipeline
        .rules()
        .rules()
        .iter()
        .map(|r| r.id().to_string())
        .collect()
}

#[tokio::test]
async fn a_deployment_checks_the_rules_once_per_interval_and_reloads_only_on_a_change() {
    let rig = Rig::create().await;
    assert!(
        rig.rules
            .commit_rules(None, &[rule("aapl-200", "above 200")], &[])
            .await
            .expect("commits")
    );
    let clock = Arc::new(ManualClock::at(
        Timestamp::from_epoch_ms(T0_MS).expect("valid"),
    ));
    let deployment = rig
        .connect(rig.rules.table(), clock.clone())
        .await
        .expect("starts");
    assert_eq!(rig.rules_calls(), ["GetItem", "Scan"], "the first load");
    assert_eq!(
        in_force(&deployment),
        ["aapl-200"],
        "the table's rules, not the base"
    );

    // Batches within the interval cost no call on the rules table.
    let before = rig.proxy.log().len();
    for second in 0..5 {
        assert_eq!(batch(&deployment, 210.0, second).await, ["aapl-200"]);
        clock.advance(Duration::from_millis(1_999));
    }
    assert_eq!(
        rig.rules_calls().len(),
        2,
        "nothing more on the rules table"
    );
    assert!(
        rig.proxy.log().len() > before,
        "the batches did reach DynamoDB"
    );

    // After the interval: exactly one GetItem of the version, no scan (nothing changed).
    clock.advance(Duration::from_millis(10));
    assert_eq!(batch(&deployment, 160.0, 6).await, Vec::<String>::new());
    assert_eq!(rig.rules_calls(), ["GetItem", "Scan", "GetItem"]);

    // A change: the next check after the interval loads it, and the next batch alerts with it.
    assert!(
        rig.rules
            .commit_rules(Some(1), &[rule("aapl-150", "above 150")], &[])
            .await
            .expect("commits")
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(batch(&deployment, 210.0, 7).await, ["aapl-150", "aapl-200"]);
    // The check, then the load: the version again (what the scan's rules are at) and the scan.
    assert_eq!(
        rig.rules_calls(),
        ["GetItem", "Scan", "GetItem", "GetItem", "GetItem", "Scan"]
    );
    assert_eq!(in_force(&deployment), ["aapl-150", "aapl-200"]);

    // A throttled check keeps the rules in force; the batch goes on.
    rig.proxy.inject(
        Service::DynamoDb,
        Some("GetItem"),
        Fault::DYNAMODB_THROTTLING,
        1,
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(batch(&deployment, 160.0, 8).await, ["aapl-150"]);
    assert_eq!(rig.proxy.injected(), 1);
    assert_eq!(in_force(&deployment), ["aapl-150", "aapl-200"]);
}

#[tokio::test]
async fn a_rules_table_that_cannot_be_read_stops_the_start_naming_its_variable() {
    let rig = Rig::create().await;
    let clock = Arc::new(ManualClock::at(
        Timestamp::from_epoch_ms(T0_MS).expect("valid"),
    ));
    let error = match rig.connect("no-such-rules", clock.clone()).await {
        Ok(_) => panic!("a missing rules table must stop the start"),
        Err(error) => error,
    };
    let text = error.to_string();
    assert!(
        text.starts_with("RULES_TABLE: table no-such-rules cannot be used:")
            && text.contains("ResourceNotFoundException"),
        "{text}"
    );

    // A transient failure is tried again (the retry policy's 2 attempts), then stops the start
    // too: without the table the rules in force are unknown.
    rig.proxy.inject(
        Service::DynamoDb,
        Some("GetItem"),
        Fault::DYNAMODB_THROTTLING,
        2,
    );
    let table = rig.rules.table().to_owned();
    let error = match rig.connect(&table, clock.clone()).await {
        Ok(_) => panic!("a rules table that keeps failing must stop the start"),
        Err(error) => error,
    };
    assert!(error.to_string().contains("ThrottlingException"), "{error}");
    assert_eq!(rig.proxy.faults_pending(), 0, "both attempts made");
    // One throttled attempt is retried and the start goes on.
    rig.proxy.inject(
        Service::DynamoDb,
        Some("GetItem"),
        Fault::DYNAMODB_THROTTLING,
        1,
    );
    let deployment = rig
        .connect(&table, clock)
        .await
        .expect("starts on the retry");
    assert_eq!(in_force(&deployment), ["high", "low"], "the base rules");
}
