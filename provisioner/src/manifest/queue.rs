//! The names a manifest's queue has on SQS (provider/queues.rs makes
//! them; stack/stores.rs checks a local box's).

/// One queue of the manifest and the names it has on SQS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePlan {
    /// As the manifest names it (`emails`, `payments.fifo`).
    pub queue: String,
    pub name: String,
    pub dead_letter: String,
    pub fifo: bool,
}

impl QueuePlan {
    /// `prefix` + the queue, and its dead-letter queue with `_dlq` (before
    /// `.fifo`). Manifest queue names have no '_' (validate.rs), so no
    /// queue's dead-letter name is another queue's name.
    pub fn new(prefix: &str, queue: &str) -> QueuePlan {
        let (base, fifo) = match queue.strip_suffix(".fifo") {
            Some(base) => (base, true),
            None => (queue, false),
        };
        let suffix = if fifo { ".fifo" } else { "" };
        QueuePlan { queue: queue.into(), name: format!("{prefix}{base}{suffix}"), dead_letter: format!("{prefix}{base}_dlq{suffix}"), fifo }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_and_its_dead_letter_queue_keep_fifo_at_the_end() {
        let plan = QueuePlan::new("ws_alice_dev_", "payments.fifo");
        assert_eq!((plan.name.as_str(), plan.dead_letter.as_str(), plan.fifo), ("ws_alice_dev_payments.fifo", "ws_alice_dev_payments_dlq.fifo", true));
        let plan = QueuePlan::new("", "emails");
        assert_eq!((plan.name.as_str(), plan.dead_letter.as_str(), plan.fifo), ("emails", "emails_dlq", false));
    }
}
