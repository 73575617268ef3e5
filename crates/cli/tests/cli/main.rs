//! The `tickwatch` command end to end, as a user runs it: one test binary (the binary under test
//! is built once, and the helpers in `support` are shared), a module per concern.

mod daily_example;
mod dlq;
mod errors;
mod kill;
mod notify_faults;
mod rules;
mod run;
mod store_faults;
mod support;
mod worker_variables;
