//! An in-memory dead-letter queue with scripted faults, for the batch runner's and the Lambda
//! handler's tests.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use tickwatch_core::ports::{Classify, ErrorClass};

use crate::dead_letter::{DeadLetter, DeadLetterQueue};

/// The error of [`MemoryDeadLetterQueue`]: always a scripted fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("injected {0:?} fault in the dead-letter queue")]
pub struct InjectedDeadLetterFault(pub ErrorClass);

impl Classify for InjectedDeadLetterFault {
    fn class(&self) -> ErrorClass {
        self.0
    }
}

/// An in-memory dead-letter queue with scripted faults, for tests.
#[derive(Debug, Default)]
pub struct MemoryDeadLetterQueue {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    letters: Vec<DeadLetter>,
    faults: VecDeque<Option<ErrorClass>>,
}

impl MemoryDeadLetterQueue {
    /// An empty queue.
    pub fn new() -> MemoryDeadLetterQueue {
        MemoryDeadLetterQueue::default()
    }

    /// Scripts the next send calls: `Some(class)` fails every letter of that call, `None` behaves.
    pub fn script(&self, calls: impl IntoIterator<Item = Option<ErrorClass>>) {
        self.lock().faults.extend(calls);
    }

    /// Every letter received, in order.
    pub fn letters(&self) -> Vec<DeadLetter> {
        self.lock().letters.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl DeadLetterQueue for MemoryDeadLetterQueue {
    type Error = InjectedDeadLetterFault;

    fn send(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Vec<Result<(), InjectedDeadLetterFault>>> + Send {
        let mut inner = self.lock();
        let answers = match inner.faults.pop_front().flatten() {
            Some(class) => vec![Err(InjectedDeadLetterFault(class)); letters.len()],
            None => {
                inner.letters.extend_from_slice(letters);
                vec![Ok(()); letters.len()]
            }
        };
        std::future::ready(answers)
    }
}

#[cfg(test)]
mod tests {
    use tickwatch_core::TickError;
    use tickwatch_core::tick::Field;

    use super::*;

    fn letter(id: usize) -> DeadLetter {
        DeadLetter {
            source_message_id: format!("m-{id}"),
            body: "x".to_owned(),
            error: TickError::Missing {
                field: Field::Price,
            },
        }
    }

    #[tokio::test]
    async fn memory_queue_follows_its_script() {
        let queue = MemoryDeadLetterQueue::new();
        queue.script([Some(ErrorClass::Transient), None]);
        let letters = [letter(1), letter(2)];
        let first = queue.send(&letters).await;
        assert!(
            first
                .iter()
                .all(|r| r == &Err(InjectedDeadLetterFault(ErrorClass::Transient)))
        );
        assert!(queue.letters().is_empty());
        let second = queue.send(&letters).await;
        assert!(second.iter().all(Result::is_ok));
        assert_eq!(queue.letters(), letters);
    }
}
