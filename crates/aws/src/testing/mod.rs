//! Test support (feature `testing`, which this crate's tests and its dependents' tests and
//! benchmarks enable; never what ships): the moto AWS emulator ([`moto`]), proxies that inject
//! latency and faults in front of it ([`proxy`]), helpers to create and read emulator resources
//! ([`resources`]), an in-memory dead-letter queue with scripted faults ([`memory`]), and
//! DynamoDB's documented item-size rule ([`item_size_bytes`], [`write_units`]), which the Lambda
//! bench's cost model applies to the items it sees written.

pub mod memory;
pub mod moto;
pub mod proxy;
pub mod resources;

pub use crate::dynamo::item::{item_size_bytes, write_units};
pub use memory::{InjectedDeadLetterFault, MemoryDeadLetterQueue};
pub use moto::*;
pub use proxy::*;
pub use resources::*;
