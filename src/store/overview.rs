//! The console's overview, read in one go for every viewer: the queue per
//! app and platform, the outbox per app, the last hour's tries by outcome
//! and failure reason (from the per-minute counts the completer keeps, not
//! from the attempts), the paused providers and the campaigns under way or
//! just ended. Every read is of a backlog's partial index or a small
//! table, so it costs the same whatever the history holds. It is read
//! unfiltered; [`Overview::only`] cuts it down to the apps a key may see.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::model::AttemptOutcome;
use crate::store::campaigns::{self, Campaign, CampaignState, Progress};
use crate::store::holds::{self, Hold};

const QUEUE: &str = include_str!("overview/queue.sql");
const OUTBOX: &str = include_str!("overview/outbox.sql");
const COUNTS: &str = include_str!("overview/counts.sql");
const CAMPAIGNS: &str = concat!(
    include_str!("campaigns/columns.sql"),
    include_str!("overview/campaigns.sql")
);
pub(crate) const STATEMENTS: &[(&str, &str)] = &[
    ("overview/queue", QUEUE),
    ("overview/outbox", OUTBOX),
    ("overview/counts", COUNTS),
    ("overview/campaigns", CAMPAIGNS),
];

/// How many failure reasons the overview lists.
pub const TOP_FAILURES: usize = 10;
/// How many campaigns the overview lists.
pub const CAMPAIGNS_SHOWN: i64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum OverviewError {
    #[error("reading the overview's {what} failed: {source}")]
    Read {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

fn reading(what: &'static str) -> impl FnOnce(sqlx::Error) -> OverviewError {
    move |source| OverviewError::Read { what, source }
}

/// Everything the overview page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    /// When it was read (the page says how fresh it is).
    pub read_at: DateTime<Utc>,
    /// The start of the minute the outcome window begins with: the
    /// current minute and the 59 before it.
    pub since: DateTime<Utc>,
    /// Per app and platform with anything pending or in flight.
    pub queues: Vec<Queue>,
    /// Per app with notifications not yet fanned out.
    pub outbox: Vec<Outbox>,
    /// The last hour's tries per app, platform and outcome.
    pub outcomes: Vec<OutcomeCount>,
    /// The same, one row per app and platform.
    pub outcome_rows: Vec<OutcomeRow>,
    /// The last hour's most frequent failure reasons, most frequent first.
    pub failures: Vec<Failure>,
    /// Every failure reason of the last hour, for [`Overview::only`] to
    /// take a viewer's top ones from.
    #[serde(skip)]
    every_failure: Vec<Failure>,
    /// Providers paused now, per app, platform and environment.
    pub holds: Vec<Hold>,
    /// Campaigns not over and those ended in the last 24 hours, newest
    /// first.
    pub campaigns: Vec<CampaignProgress>,
}

/// Deliveries of one app and platform.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Queue {
    pub app: String,
    pub platform: String,
    /// Pending and due: waiting for a free slot.
    pub due: i64,
    /// How long the oldest due one has been due; none when nothing is.
    pub oldest_due_age_secs: Option<f64>,
    /// Pending, due later: a retry or a provider's pause.
    pub later: i64,
    /// Being sent now.
    pub sending: i64,
}

/// Notifications of one app not yet fanned out to deliveries.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Outbox {
    pub app: String,
    pub due: i64,
    pub oldest_due_age_secs: Option<f64>,
    /// Scheduled for later (`send_at` in the future).
    pub later: i64,
}

/// Tries of one app, platform and outcome in the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeCount {
    pub app: String,
    pub platform: String,
    pub outcome: String,
    pub count: i64,
}

/// The last hour's tries of one app and platform, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutcomeRow {
    pub app: String,
    pub platform: String,
    pub total: i64,
    pub delivered: i64,
    /// Failed for now, tried again (or a connection lost mid-send).
    pub transient: i64,
    /// The device's token is dead: the device was removed.
    pub token_dead: i64,
    /// Refused for good (the message itself was wrong).
    pub permanent: i64,
    /// The provider rejected the app's setup.
    pub config_error: i64,
    /// The process sending it stopped reporting.
    pub lost: i64,
    /// `delivered` of `total`, in percent (100 when there were none).
    pub delivered_percent: f64,
}

/// A failure reason of the last hour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Failure {
    pub app: String,
    pub platform: String,
    pub outcome: String,
    /// The bounded reason of `pushrelay_attempts_total`: the provider's
    /// documented reason, or `timeout`, `connection_lost`,
    /// `unrecognized`, `local`, `lost`.
    pub reason: String,
    pub count: i64,
}

/// A campaign and how far it has come.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignProgress {
    pub campaign: Campaign,
    pub progress: Progress,
    /// Targets with nothing left to happen, of those targeted.
    pub done: i64,
    /// `done` of `targeted`, in percent (0 before the audience is known).
    pub percent_done: f64,
}

impl CampaignProgress {
    fn new(campaign: Campaign, progress: Progress) -> CampaignProgress {
        let t = &progress.total;
        let done = (t.targeted - t.scheduled - t.queued).max(0);
        let percent_done = if t.targeted > 0 {
            done as f64 * 100.0 / t.targeted as f64
        } else if progress.finished && campaign.state == CampaignState::Completed {
            100.0
        } else {
            0.0
        };
        CampaignProgress {
            campaign,
            progress,
            done,
            percent_done,
        }
    }
}

/// Reads the overview, unfiltered.
pub async fn load(pool: &PgPool) -> Result<Overview, OverviewError> {
    let now = Utc::now();
    let since = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now) - Duration::minutes(59);
    let (queues, outbox, counts, holds, listed) = tokio::try_join!(
        async {
            sqlx::query_as::<_, Queue>(QUEUE)
                .fetch_all(pool)
                .await
                .map_err(reading("queue"))
        },
        async {
            sqlx::query_as::<_, Outbox>(OUTBOX)
                .fetch_all(pool)
                .await
                .map_err(reading("outbox"))
        },
        async {
            sqlx::query_as::<_, Failure>(COUNTS)
                .bind(since)
                .fetch_all(pool)
                .await
                .map_err(reading("outcome counts"))
        },
        async {
            holds::active(pool, None)
                .await
                .map_err(reading("paused providers"))
        },
        async {
            sqlx::query_as::<_, Campaign>(CAMPAIGNS)
                .bind(now - Duration::hours(24))
                .bind(CAMPAIGNS_SHOWN)
                .fetch_all(pool)
                .await
                .map_err(reading("campaigns"))
        },
    )?;
    // One at a time: a campaign's counts are index scans over its rows,
    // and twenty of them at once would take twenty connections.
    let mut campaigns = Vec::with_capacity(listed.len());
    for c in listed {
        let progress = campaigns::progress(pool, c.id, now)
            .await
            .map_err(reading("campaign progress"))?;
        campaigns.push(CampaignProgress::new(c, progress));
    }
    let (outcomes, mut every_failure) = split_counts(counts);
    every_failure.sort_by(|a, b| {
        b.count.cmp(&a.count).then_with(|| {
            (&a.app, &a.platform, &a.outcome, &a.reason).cmp(&(
                &b.app,
                &b.platform,
                &b.outcome,
                &b.reason,
            ))
        })
    });
    let mut overview = Overview {
        read_at: now,
        since,
        queues,
        outbox,
        outcome_rows: outcome_rows(&outcomes),
        outcomes,
        failures: Vec::new(),
        every_failure,
        holds,
        campaigns,
    };
    overview.failures = top(&overview.every_failure);
    Ok(overview)
}

/// Sums the reasons away for the outcome counts; keeps the failures.
fn split_counts(counts: Vec<Failure>) -> (Vec<OutcomeCount>, Vec<Failure>) {
    let mut outcomes: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut failures = Vec::new();
    for f in counts {
        *outcomes
            .entry((f.app.clone(), f.platform.clone(), f.outcome.clone()))
            .or_default() += f.count;
        if f.outcome != AttemptOutcome::Delivered.as_str() {
            failures.push(f);
        }
    }
    let outcomes = outcomes
        .into_iter()
        .map(|((app, platform, outcome), count)| OutcomeCount {
            app,
            platform,
            outcome,
            count,
        })
        .collect();
    (outcomes, failures)
}

/// One row per app and platform (`outcomes` is in that order).
fn outcome_rows(outcomes: &[OutcomeCount]) -> Vec<OutcomeRow> {
    let mut rows: Vec<OutcomeRow> = Vec::new();
    for o in outcomes {
        let same = rows
            .last()
            .is_some_and(|r| r.app == o.app && r.platform == o.platform);
        if !same {
            rows.push(OutcomeRow {
                app: o.app.clone(),
                platform: o.platform.clone(),
                ..OutcomeRow::default()
            });
        }
        let r = rows.last_mut().expect("pushed above");
        r.total += o.count;
        match o.outcome.parse::<AttemptOutcome>() {
            Ok(AttemptOutcome::Delivered) => r.delivered += o.count,
            Ok(AttemptOutcome::Transient) => r.transient += o.count,
            Ok(AttemptOutcome::TokenDead) => r.token_dead += o.count,
            Ok(AttemptOutcome::Permanent) => r.permanent += o.count,
            Ok(AttemptOutcome::ConfigError) => r.config_error += o.count,
            // An outcome this version does not know is still in the total.
            Ok(AttemptOutcome::Lost) | Err(_) => r.lost += o.count,
        }
    }
    for r in &mut rows {
        r.delivered_percent = if r.total > 0 {
            r.delivered as f64 * 100.0 / r.total as f64
        } else {
            100.0
        };
    }
    rows
}

fn top(failures: &[Failure]) -> Vec<Failure> {
    failures.iter().take(TOP_FAILURES).cloned().collect()
}

impl Overview {
    /// The overview as a key limited to `apps` sees it (`None`: every
    /// app): other apps' rows are gone, and the top failure reasons are
    /// those of the apps left.
    pub fn only(&self, apps: Option<&[String]>) -> Overview {
        let Some(apps) = apps else {
            return self.clone();
        };
        let mine = |app: &str| apps.iter().any(|a| a == app);
        let every_failure: Vec<Failure> = self
            .every_failure
            .iter()
            .filter(|f| mine(&f.app))
            .cloned()
            .collect();
        Overview {
            read_at: self.read_at,
            since: self.since,
            queues: keep(&self.queues, |q| mine(&q.app)),
            outbox: keep(&self.outbox, |o| mine(&o.app)),
            outcomes: keep(&self.outcomes, |o| mine(&o.app)),
            outcome_rows: keep(&self.outcome_rows, |o| mine(&o.app)),
            failures: top(&every_failure),
            every_failure,
            holds: keep(&self.holds, |h| mine(&h.app)),
            campaigns: keep(&self.campaigns, |c| mine(&c.campaign.app)),
        }
    }
}

fn keep<T: Clone>(rows: &[T], f: impl Fn(&T) -> bool) -> Vec<T> {
    rows.iter().filter(|r| f(r)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(app: &str, platform: &str, outcome: &str, reason: &str, n: i64) -> Failure {
        Failure {
            app: app.into(),
            platform: platform.into(),
            outcome: outcome.into(),
            reason: reason.into(),
            count: n,
        }
    }

    #[test]
    fn outcomes_sum_the_reasons_and_failures_leave_out_deliveries() {
        let (outcomes, failures) = split_counts(vec![
            count("a", "ios", "delivered", "none", 5),
            count("a", "ios", "transient", "ServiceUnavailable", 2),
            count("a", "ios", "transient", "timeout", 1),
            count("b", "android", "token_dead", "UNREGISTERED", 3),
        ]);
        assert_eq!(
            outcomes
                .iter()
                .map(|o| (o.app.as_str(), o.outcome.as_str(), o.count))
                .collect::<Vec<_>>(),
            [
                ("a", "delivered", 5),
                ("a", "transient", 3),
                ("b", "token_dead", 3)
            ]
        );
        assert_eq!(failures.len(), 3);
        let rows = outcome_rows(&outcomes);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].total, rows[0].delivered, rows[0].transient),
            (8, 5, 3)
        );
        assert_eq!(rows[0].delivered_percent, 62.5);
        assert_eq!((rows[1].total, rows[1].token_dead), (3, 3));
    }
}
