//! Background work that runs on a timer until the instance shuts down: the clean-up of
//! expired rows, the `database_up` probe, the first statistics of new tables, and the delivery
//! of period results to webhooks. (The Redis supervisor and the board poller use
//! the same loop, [`every`].)

pub(crate) mod janitor;
pub(crate) mod probe;
pub(crate) mod statistics;
pub(crate) mod webhooks;

use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;

/// Spawns a task that runs `work` every `period` (the first run at once) until `shutdown`
/// turns true. A run in progress is finished, not cut off; the next tick is skipped if a run
/// took longer than the period, so slow work never piles up.
pub(crate) fn every<F, Fut>(
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut work: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            work().await;
        }
    })
}
