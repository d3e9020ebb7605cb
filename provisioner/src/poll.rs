//! Waiting for something that takes a while (a box to run, sshd to answer,
//! a service to pass its check): one loop with a deadline and a backoff
//! instead of one written out in every place that waits.

use std::time::Duration;

use tokio::time::Instant;

/// How often to look again: soon at first (local boxes and moto answer in
/// milliseconds), then less and less often, up to `max` (far below EC2's
/// API rate limits when it is the EC2 API being asked).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { first, max }
    }
}

/// Calls `attempt` until it gives `Some`, an error, or `timeout` has passed
/// since the first call (which always happens), sleeping by `backoff` in
/// between. `Ok(None)`: the time ran out; the caller says what it waited
/// for.
pub async fn until<T, E>(timeout: Duration, backoff: Backoff, mut attempt: impl AsyncFnMut() -> Result<Option<T>, E>) -> Result<Option<T>, E> {
    let mut pauses = Pauses::new(timeout, backoff);
    loop {
        if let Some(done) = attempt().await? {
            return Ok(Some(done));
        }
        if !pauses.wait().await {
            return Ok(None);
        }
    }
}

/// The waits between attempts, by `backoff`, until `timeout` has passed
/// since it was made: what [`until`] sleeps, for loops it cannot serve (its
/// async closure is not `Send` inside an `async_trait` method).
pub struct Pauses {
    deadline: Instant,
    pause: Duration,
    max: Duration,
}

impl Pauses {
    pub fn new(timeout: Duration, backoff: Backoff) -> Pauses {
        Pauses { deadline: Instant::now() + timeout, pause: backoff.first, max: backoff.max }
    }

    /// Sleeps until the next attempt is due; false (at once) when the time
    /// is up.
    pub async fn wait(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.deadline {
            return false;
        }
        tokio::time::sleep(self.pause.min(self.deadline - now)).await;
        self.pause = (self.pause * 2).min(self.max);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));

    #[tokio::test]
    async fn it_returns_what_the_attempt_found_or_none_once_the_time_is_up() {
        let mut calls = 0;
        let found = until(Duration::from_secs(5), FAST, async || {
            calls += 1;
            Ok::<_, ()>((calls == 3).then_some(calls))
        })
        .await;
        assert_eq!(found, Ok(Some(3)));

        let started = std::time::Instant::now();
        let mut calls = 0;
        let never = until(Duration::from_millis(30), FAST, async || {
            calls += 1;
            Ok::<Option<()>, ()>(None)
        })
        .await;
        assert_eq!(never, Ok(None));
        assert!(calls > 3 && started.elapsed() < Duration::from_millis(500), "{calls} calls in {:?}", started.elapsed());
        assert_eq!(until(Duration::ZERO, FAST, async || Err::<Option<()>, _>("refused")).await, Err("refused"));
    }
}
