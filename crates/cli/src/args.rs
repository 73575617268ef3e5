//! Command-line arguments, as clap reads them. Validation into domain types happens in each
//! subcommand (rules files, timestamps, destinations), with errors that name the argument.
//!
//! The doc comments below are clap's `--help` text, written for a terminal: `[default]` is a
//! TOML table and `<queue name>` a placeholder, not rustdoc links or HTML.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tickwatch_aws::worker::{
    VISIBILITY_TIMEOUT_S_DEFAULT, VISIBILITY_TIMEOUT_S_MAX, VISIBILITY_TIMEOUT_S_MIN,
    WAIT_TIME_S_MAX,
};
use tickwatch_local::Destination;

/// Default database file.
pub(crate) const DB_PATH_DEFAULT: &str = "tickwatch.db";

/// Real-time market-data alerts: ticks in, alerts stored and announced.
#[derive(Debug, Parser)]
#[command(name = "tickwatch", version, about, long_about = None)]
pub(crate) struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Read ticks, apply the alert rules, store and announce alerts (no AWS needed).
    Run(RunArgs),
    /// Query stored alerts.
    Alerts(AlertsArgs),
    /// Announce stored alerts that have not been announced yet (after a notifier outage).
    Notify(NotifyArgs),
    /// Write realistic random-walk ticks (NDJSON) that cross the default thresholds.
    Generate(GenerateArgs),
    /// Consume an SQS queue with the same pipeline as the Lambda function (AWS or an emulator).
    SqsWorker(WorkerArgs),
    /// Smoke-test a deployment: send ticks, check alerts, notifications and the dead-letter queue.
    Smoke(SmokeArgs),
    /// Look into the dead-letter queue and send ticks back to the tick queue once fixed.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Manage alert rules: in the local database, or in a deployment's rules table.
    Rules(RulesArgs),
    /// Serve the live board of a database in the browser: alerts, symbols, rules, health.
    Serve(ServeArgs),
}

/// Default address of the board.
pub(crate) const LISTEN_DEFAULT: &str = "127.0.0.1:8080";

/// `tickwatch serve`
#[derive(Debug, Args)]
#[command(
    after_help = "The board shows what a `tickwatch run` writing the same database does, live: \
start one in another terminal, or use `tickwatch run --serve ADDR` to run and serve in one process. \
It listens on loopback only unless a token is set; with a token every request must carry it \
(open http://ADDR/?token=TOKEN once in the browser)."
)]
pub(crate) struct ServeArgs {
    /// SQLite database to show (made by `tickwatch run`).
    #[arg(long, default_value = DB_PATH_DEFAULT)]
    pub(crate) db: PathBuf,
    /// Address to listen on. A non-loopback address needs a token.
    #[arg(long, default_value = LISTEN_DEFAULT)]
    pub(crate) listen: std::net::SocketAddr,
    #[command(flatten)]
    pub(crate) token: TokenArg,
}

/// The board's token.
#[derive(Debug, Args)]
pub(crate) struct TokenArg {
    /// Token every request to the board must carry: 16 to 256 of A-Z a-z 0-9 . _ ~ -
    /// (`openssl rand -hex 32`). Needed to listen on a non-loopback address.
    #[arg(long, env = "TICKWATCH_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

/// `tickwatch rules ...`
#[derive(Debug, Args)]
#[command(
    after_help = "Rules live in the SQLite database (--db, default tickwatch.db), or, with \
--table NAME or --outputs FILE, in a deployment's DynamoDB rules table. A running `tickwatch run` \
picks a change up before its next batch; a deployed function within RULES_REFRESH_SECONDS.\n\
Until the first change, the base rules are in force: `high` (* above 150) and `low` (* below 50), \
firing on enter (on AWS: as the function's HIGH_THRESHOLD, LOW_THRESHOLD, ALERT_MODE, HYSTERESIS \
and RULES variables say, read from this process's environment). The first change copies them into \
the store with it, so nothing in force silently disappears."
)]
pub(crate) struct RulesArgs {
    #[command(subcommand)]
    pub(crate) command: RulesCommand,
    /// SQLite database holding the rules (created by the first change).
    #[arg(long, global = true, default_value = DB_PATH_DEFAULT)]
    pub(crate) db: PathBuf,
    /// A deployment's DynamoDB rules table, instead of the database.
    #[arg(long, global = true, conflicts_with = "outputs")]
    pub(crate) table: Option<String>,
    /// A deployment's flat outputs JSON (its rules_table_name and aws_region), instead of the
    /// database.
    #[arg(long, global = true)]
    pub(crate) outputs: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub(crate) format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RulesCommand {
    /// List the rules in force.
    List,
    /// Show one rule.
    Show {
        /// The rule's id.
        id: String,
    },
    /// Add a rule.
    Add(RuleFields),
    /// Change a rule: only the fields given change. Changing what it watches or how it fires
    /// re-arms it for every symbol; a label, pause or resume does not.
    Edit(RuleFields),
    /// Pause a rule: it raises nothing until resumed.
    Pause {
        /// The rule's id.
        id: String,
    },
    /// Resume a paused rule (its firing state is kept).
    Resume {
        /// The rule's id.
        id: String,
    },
    /// Re-arm a rule for every symbol: a `once` rule that fired fires again.
    Rearm {
        /// The rule's id.
        id: String,
    },
    /// Delete a rule.
    Rm {
        /// The rule's id.
        id: String,
    },
    /// Put every rule of a file: a JSON array (what `export` writes) or a TOML rules file of the
    /// [default]/[symbols.X] form, translated.
    Import {
        /// The file, or - for stdin.
        file: PathBuf,
        /// Also delete the rules the file does not have.
        #[arg(long)]
        replace: bool,
    },
    /// Write every rule as a JSON array (for `import`).
    Export,
}

/// A rule's fields on the command line.
#[derive(Debug, Args)]
pub(crate) struct RuleFields {
    /// The rule's id: 1-64 characters of a-z A-Z 0-9 . _ -
    pub(crate) id: String,
    /// Symbols: one symbol, a prefix pattern (BTC-*), or * for every symbol.
    #[arg(long)]
    pub(crate) symbols: Option<String>,
    /// Condition: "above X" or "below X" (strict), or over a window W (30m, 4h, 5d; its
    /// resolution is W/60): "rise X% within W", "fall X% within W", "volume Kx over W",
    /// "crosses_ma W [up|down|either]".
    #[arg(long, alias = "condition")]
    pub(crate) when: Option<String>,
    /// every (each tick that satisfies it), enter (on entering; the default) or once.
    #[arg(long)]
    pub(crate) fire: Option<String>,
    /// enter: how far the condition must clear before it re-arms.
    #[arg(long)]
    pub(crate) hysteresis: Option<f64>,
    /// At most one alert per symbol within this many seconds of tick time (`none` removes it).
    #[arg(long)]
    pub(crate) cooldown: Option<String>,
    /// Ticks stamped after this raise nothing: RFC 3339 or epoch ms (`none` removes it).
    #[arg(long)]
    pub(crate) expires_at: Option<String>,
    /// Text the rule's alerts carry (`none` removes it).
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Symbols the pattern matches that the rule leaves alone (repeatable).
    #[arg(long = "except")]
    pub(crate) except: Vec<String>,
    /// Add it paused.
    #[arg(long)]
    pub(crate) paused: bool,
}

/// `tickwatch dlq ...`
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead letters with their reason (in no particular order: SQS keeps none). Every
    /// letter looked at is given back at once.
    List(DlqListArgs),
    /// Show one dead letter, whole: its body and every attribute.
    Show(DlqShowArgs),
    /// Move the chosen dead letters back to the tick queue, exactly once (see --journal).
    Redrive(DlqRedriveArgs),
}

/// Which dead-letter queue, and which of its letters.
#[derive(Debug, Args)]
pub(crate) struct DlqSelection {
    /// URL of the dead-letter queue.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub(crate) dead_letter_queue_url: String,
    /// Only letters rejected for this reason code (e.g. price.invalid).
    #[arg(long)]
    pub(crate) reason: Option<String>,
    /// Only letters dead-lettered at or after this time (RFC 3339 or epoch milliseconds).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Only letters whose tick names this symbol.
    #[arg(long)]
    pub(crate) symbol: Option<String>,
    /// At most this many letters.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub(crate) limit: u32,
}

#[derive(Debug, Args)]
pub(crate) struct DlqListArgs {
    #[command(flatten)]
    pub(crate) selection: DlqSelection,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct DlqShowArgs {
    /// The letter's message id (as `dlq list` prints it).
    pub(crate) id: String,
    /// URL of the dead-letter queue.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub(crate) dead_letter_queue_url: String,
}

#[derive(Debug, Args)]
pub(crate) struct DlqRedriveArgs {
    #[command(flatten)]
    pub(crate) selection: DlqSelection,
    /// URL of the tick queue the letters go back to.
    #[arg(long, env = "TICKS_QUEUE_URL")]
    pub(crate) queue_url: String,
    /// Say what would move, and move nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Move without asking (needed when stdin is not a terminal).
    #[arg(long)]
    pub(crate) yes: bool,
    /// The journal of letters already sent, which makes an interrupted redrive resumable without
    /// sending anything twice. Keep one per dead-letter queue; by default
    /// ./tickwatch-redrive-<queue name>.journal.
    #[arg(long)]
    pub(crate) journal: Option<PathBuf>,
}

/// Input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum InputFormat {
    /// One JSON tick per line.
    Ndjson,
    /// A header naming symbol, price and timestamp (and optionally volume), then one tick per
    /// line.
    Csv,
}

/// Rule modes on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ModeArg {
    /// Alert when a symbol enters the high or low zone; re-arm inside the band.
    Cross,
    /// Alert on every tick beyond a threshold.
    Level,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Tick file, or - for stdin.
    #[arg(long, short, default_value = "-")]
    pub(crate) input: String,

    /// Input format; by default .csv files are CSV and everything else NDJSON.
    #[arg(long, value_enum)]
    pub(crate) format: Option<InputFormat>,

    /// SQLite database for alerts and symbol state (created if missing).
    #[arg(long, default_value = DB_PATH_DEFAULT)]
    pub(crate) db: PathBuf,

    /// TOML rules file: a [default] table and [symbols.NAME] overrides. With it (or --mode) the
    /// file's rules are in force for this run instead of the database's, and do not change while
    /// it runs.
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,

    /// Rule mode of the default thresholds (cross: on entering a zone; level: on every tick
    /// beyond), for this run instead of the database's rules.
    #[arg(long, value_enum)]
    pub(crate) mode: Option<ModeArg>,

    /// Where alerts are announced: stdout, file:PATH or webhook:URL.
    #[arg(long, default_value = "stdout")]
    pub(crate) notify: Destination,

    /// Stop at the first invalid line, with a non-zero exit.
    #[arg(long)]
    pub(crate) strict: bool,

    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    pub(crate) quiet: bool,

    /// Also serve the live board at this address (e.g. 127.0.0.1:8080); it stays up after the input
    /// ends, until Ctrl-C.
    #[arg(long, value_name = "ADDR")]
    pub(crate) serve: Option<std::net::SocketAddr>,

    /// Do not write the board (what `tickwatch serve` shows of symbols and health) into the
    /// database: saves its small cost; alerts and rules are served all the same.
    #[arg(long, conflicts_with = "serve")]
    pub(crate) no_board: bool,

    #[command(flatten)]
    pub(crate) token: TokenArg,
}

/// Output formats for `alerts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON object per line (the alert plus `notified`).
    Json,
}

/// Alert kinds on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KindArg {
    /// Above the high threshold.
    #[value(name = "HIGH", alias = "high")]
    High,
    /// Below the low threshold.
    #[value(name = "LOW", alias = "low")]
    Low,
}

#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    /// SQLite database to read.
    #[arg(long, default_value = DB_PATH_DEFAULT)]
    pub(crate) db: PathBuf,
    /// Only this symbol.
    #[arg(long)]
    pub(crate) symbol: Option<String>,
    /// Only this kind.
    #[arg(long, value_enum)]
    pub(crate) kind: Option<KindArg>,
    /// Only alerts of this rule (by id).
    #[arg(long)]
    pub(crate) rule: Option<String>,
    /// Only ticks at or after this time (RFC 3339 or epoch milliseconds).
    #[arg(long)]
    pub(crate) since: Option<String>,
    /// Only ticks before this time (RFC 3339 or epoch milliseconds).
    #[arg(long)]
    pub(crate) until: Option<String>,
    /// Only alerts not yet announced.
    #[arg(long)]
    pub(crate) pending: bool,
    /// At most this many, newest first (by tick time).
    #[arg(long, default_value_t = 1000)]
    pub(crate) limit: u32,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub(crate) format: OutputFormat,
}

#[derive(Debug, Args)]
pub(crate) struct NotifyArgs {
    /// SQLite database holding the alerts.
    #[arg(long, default_value = DB_PATH_DEFAULT)]
    pub(crate) db: PathBuf,
    /// Where alerts are announced: stdout, file:PATH or webhook:URL.
    #[arg(long, default_value = "stdout")]
    pub(crate) notify: Destination,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// Number of symbols.
    #[arg(long, default_value_t = 8)]
    pub(crate) symbols: usize,
    /// Number of ticks.
    #[arg(long, default_value_t = 1000)]
    pub(crate) ticks: u64,
    /// Random seed: the same seed always gives the same ticks.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Time of the first tick (RFC 3339).
    #[arg(long, default_value = "2026-01-02T14:30:00Z")]
    pub(crate) start: String,
    /// Output file (default stdout).
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
}

/// Where the worker finds its AWS resources: each flag, or else the Lambda function's variable of
/// the same meaning. Validated as the function validates them (table names, topic ARN, queue URL).
#[derive(Debug, Args)]
pub(crate) struct AwsResources {
    /// DynamoDB table of alerts.
    #[arg(long, env = "ALERTS_TABLE_NAME")]
    pub(crate) alerts_table: String,
    /// DynamoDB table of cross-mode symbol state.
    #[arg(long, env = "STATE_TABLE_NAME")]
    pub(crate) state_table: String,
    /// SNS topic that announces alerts.
    #[arg(long, env = "ALERTS_TOPIC_ARN")]
    pub(crate) topic_arn: String,
    /// Dead-letter queue that receives rejected ticks, with the reason.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    pub(crate) dead_letter_queue_url: String,
}

/// `tickwatch sqs-worker`. The rules come from the function's variables (HIGH_THRESHOLD,
/// LOW_THRESHOLD, ALERT_MODE, HYSTERESIS, RULES), read the way the function reads them; a flag
/// given on the command line takes the place of its variable.
#[derive(Debug, Args)]
#[command(
    after_help = "The rules come from the Lambda function's variables, read as the function \
reads them: HIGH_THRESHOLD (150), LOW_THRESHOLD (50), ALERT_MODE (cross), HYSTERESIS (0) and RULES \
(JSON per-symbol overrides). --mode takes the place of ALERT_MODE, --rules FILE that of RULES.\n\
Exit codes: 0 every message done; 3 some left for redelivery, all stored (announcing or deleting \
them failed); 4 some left for redelivery before their ticks were stored; 1 error; 2 usage."
)]
pub(crate) struct WorkerArgs {
    /// URL of the SQS queue of ticks.
    #[arg(long, env = "TICKS_QUEUE_URL")]
    pub(crate) queue_url: String,
    #[command(flatten)]
    pub(crate) resources: AwsResources,
    /// TOML rules file (same format as `run --rules`), read over HIGH_THRESHOLD, LOW_THRESHOLD,
    /// HYSTERESIS and ALERT_MODE; takes the place of RULES.
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Default rule mode; takes the place of ALERT_MODE (default cross).
    #[arg(long, value_enum)]
    pub(crate) mode: Option<ModeArg>,
    /// Stop once a receive comes back empty instead of polling until Ctrl-C.
    #[arg(long)]
    pub(crate) drain: bool,
    /// Long-poll wait per receive, in seconds (at most SQS's limit).
    #[arg(
        long,
        default_value_t = WAIT_TIME_S_MAX,
        value_parser = clap::value_parser!(u32).range(0..=i64::from(WAIT_TIME_S_MAX))
    )]
    pub(crate) wait_seconds: u32,
    /// Visibility timeout per receive, in seconds: a batch must finish within it, and failed
    /// ticks come back after it.
    #[arg(
        long,
        default_value_t = VISIBILITY_TIMEOUT_S_DEFAULT,
        value_parser = clap::value_parser!(u32).range(
            i64::from(VISIBILITY_TIMEOUT_S_MIN)..=i64::from(VISIBILITY_TIMEOUT_S_MAX)
        )
    )]
    pub(crate) visibility_timeout_seconds: u32,
}

#[derive(Debug, Args)]
pub(crate) struct SmokeArgs {
    /// The deployment's outputs as flat JSON (written by scripts/flat-outputs).
    #[arg(long, default_value = "cfn-outputs/flat-outputs.json")]
    pub(crate) outputs: PathBuf,
    /// Consume the ticks with an in-process SQS worker (for an emulator, where no Lambda function
    /// runs). Never use it against a live deployment: it would compete with the function.
    #[arg(long)]
    pub(crate) consume: bool,
    /// How long to wait for the results, in seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout_seconds: u64,
}
