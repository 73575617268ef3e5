//! # tickwatch-lambda
//!
//! The tickwatch AWS Lambda function. [`config`] reads and validates the environment once at
//! init; [`startup`] builds the adapters and checks the AWS resources (warming the connections)
//! through [`tickwatch_aws::deploy`], the wiring `tickwatch sqs-worker` shares, and reports init
//! errors to the Runtime API; [`handler`] turns an SQS event into a partial batch
//! response through the core pipeline. The `bootstrap` binary wires them to `lambda_runtime`.

pub mod config;
pub mod handler;
pub mod startup;

pub use config::{ConfigError, FunctionConfig};
pub use handler::{Handler, HandlerError};
