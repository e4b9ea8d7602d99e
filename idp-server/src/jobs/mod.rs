//! Background jobs: the mail sender (`mail_delivery`, its own loop: see there), and
//! expiry and clean-up of what storage keeps past its use (grants, email links, audit
//! events, signing keys, undelivered mail). One job a
//! file, each a single idempotent `DELETE … WHERE <older than>` statement, so that
//! any number of instances can run them at the same moment without harm. To avoid
//! the wasted work, each run first takes a lease in the shared cache
//! (`put_if_absent` on `job:NAME`, for the job's period): on N instances sharing Redis
//! one of them runs each job per period; with the in-process cache each instance runs
//! its own (the embedded default has one instance).

pub mod audit_retention;
pub mod grants;
pub mod links;
pub mod mail_delivery;
pub mod mail_retention;
pub mod signing_keys;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::state::AppState;

type JobFuture<'a> = Pin<Box<dyn Future<Output = idp_core::Result<u64>> + Send + 'a>>;

/// One periodic job.
pub struct Job {
    pub name: &'static str,
    pub every: Duration,
    /// Deletes what is due; returns how many rows went.
    pub run: for<'a> fn(&'a AppState) -> JobFuture<'a>,
}

/// Every job, in the order they first run.
pub fn all() -> Vec<Job> {
    vec![
        grants::JOB,
        links::JOB,
        audit_retention::JOB,
        signing_keys::JOB,
        mail_retention::JOB,
    ]
}

/// The running jobs; `stop` ends them between runs (a run in progress finishes).
pub struct Jobs {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Jobs {
    /// Adds this instance's mail sender, stopped with the jobs.
    pub fn deliver_mail(&mut self, state: &AppState) {
        self.tasks
            .spawn(mail_delivery::run(state.clone(), self.stop.subscribe()));
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts every job on its own task (a first run soon after start, then one per
/// period) and the mail sender.
pub fn spawn(state: &AppState) -> Jobs {
    let mut jobs = spawn_these(state, all());
    jobs.deliver_mail(state);
    jobs
}

pub fn spawn_these(state: &AppState, jobs: Vec<Job>) -> Jobs {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for job in jobs {
        let state = state.clone();
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(job.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                run_once(&state, &job).await;
            }
        });
    }
    Jobs { stop, tasks }
}

/// Runs a job when this instance takes its lease for the period. Failures are logged:
/// the next period tries again.
pub async fn run_once(state: &AppState, job: &Job) -> Option<u64> {
    let lease = format!("job:{}", job.name);
    // Slightly shorter than the period, so the next tick of whichever instance comes
    // first finds the lease gone.
    let hold = job
        .every
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    match state.cache.put_if_absent(&lease, b"1", hold).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(job = job.name, "job: another instance ran it this period");
            return None;
        }
        Err(e) => {
            tracing::warn!(job = job.name, error = %e, "job: cache unavailable, skipped");
            return None;
        }
    }
    match (job.run)(state).await {
        Ok(n) => {
            tracing::info!(job = job.name, deleted = n, "job done");
            Some(n)
        }
        Err(e) => {
            tracing::warn!(job = job.name, error = %e, "job failed; retried next period");
            None
        }
    }
}
