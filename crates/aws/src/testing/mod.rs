//! Test support (feature `testing`, which this crate's tests and its dependents' tests and
//! benchmarks enable; never what ships): the moto AWS emulator ([`moto`]), proxies that inject
//! latency and faults in front of it ([`proxy`]), helpers to create and read emulator resources
//! ([`resources`]), and an in-memory dead-letter queue with scripted faults ([`memory`]).

pub mod memory;
pub mod moto;
pub mod proxy;
pub mod resources;

pub use memory::{InjectedDeadLetterFault, MemoryDeadLetterQueue};
pub use moto::*;
pub use proxy::*;
pub use resources::*;
