//! A send-rate limiter (GCRA): each caller reserves the next free slot and
//! sleeps until it, so a big campaign is spread out to exactly the
//! configured rate instead of tripping the provider's quota and coming back
//! as 429s. Up to `burst` sends may go at once after an idle period.
//!
//! Bulk sends (campaigns) may take at most `bulk_share` of the rate: they
//! first wait on a pace of their own, then take the next free slot like
//! any send. So a campaign never fills the shared schedule ahead of time,
//! and an urgent alert waits at most about one interval for a slot,
//! whatever the campaign's backlog.
//!
//! A caller that gives up while waiting (cancelled: the daemon is
//! stopping) hands its slot back, so abandoned waits do not eat the quota. When
//! the provider says the quota is exceeded anyway, [`RateLimiter::slow_down`]
//! halves the rate until the provider's Retry-After has passed: others
//! (other services, other hosts) evidently share the quota, but one
//! QUOTA_EXCEEDED — Google also answers it for a single device sent too
//! much — must not stop a whole project's sends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::Priority;

pub struct RateLimiter {
    /// The interval between sends at the whole configured rate.
    interval: Duration,
    burst_count: u32,
    /// How many processes share the rate (this one takes 1/share of it).
    share: AtomicU32,
    next_free: Mutex<Instant>,
    /// The share of the rate bulk sends may take, and their own pace.
    bulk_share: f64,
    next_bulk: Mutex<Instant>,
    /// The end of the latest slowdown.
    slowed_until: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn per_minute(rate: u32, burst: u32) -> RateLimiter {
        let interval = Duration::from_secs(60) / rate.max(1);
        RateLimiter {
            interval,
            burst_count: burst.max(1),
            share: AtomicU32::new(1),
            next_free: Mutex::new(Instant::now()),
            bulk_share: 1.0,
            next_bulk: Mutex::new(Instant::now()),
            slowed_until: Mutex::new(None),
        }
    }

    /// Lets bulk sends take at most `share` (0 < share <= 1) of the rate.
    pub fn with_bulk_share(mut self, share: f64) -> RateLimiter {
        self.bulk_share = share.clamp(f64::MIN_POSITIVE, 1.0);
        self
    }

    /// Takes 1/`processes` of the configured rate (and of its burst).
    pub fn set_share(&self, processes: u32) {
        self.share.store(processes.max(1), Ordering::Relaxed);
    }

    /// This process's interval between sends, and how far back unused
    /// capacity reaches (`burst` reservations fit in it).
    fn pace(&self) -> (Duration, Duration) {
        // Slowed down: as if twice as many processes shared the rate.
        let share =
            self.share.load(Ordering::Relaxed) * if self.slowed_for().is_some() { 2 } else { 1 };
        let interval = self.interval * share;
        let burst = (self.burst_count / share).max(1);
        (interval, interval * (burst - 1))
    }

    /// Waits until this caller may send.
    pub async fn acquire(&self, priority: Priority) {
        let (interval, burst) = self.pace();
        if priority == Priority::Bulk && self.bulk_share < 1.0 {
            let bulk_interval = interval.div_f64(self.bulk_share);
            let bulk_burst = bulk_interval.mul_f64(burst.div_duration_f64(interval));
            wait_for_slot(&self.next_bulk, bulk_interval, bulk_burst).await;
        }
        wait_for_slot(&self.next_free, interval, burst).await;
    }

    /// The provider said the quota is exceeded: half the rate until
    /// `until`.
    pub fn slow_down(&self, until: Instant) {
        let mut slowed = self.slowed_until.lock().unwrap();
        if slowed.is_none_or(|h| h < until) {
            *slowed = Some(until);
        }
    }

    /// How long the rate stays halved, if it is.
    pub fn slowed_for(&self) -> Option<Duration> {
        let now = Instant::now();
        let until = (*self.slowed_until.lock().unwrap())?;
        (until > now).then(|| until - now)
    }
}

/// Reserves the next free slot on `cursor` and sleeps until it.
async fn wait_for_slot(cursor: &Mutex<Instant>, interval: Duration, burst: Duration) {
    let wait_until = {
        let mut next = cursor.lock().unwrap();
        let now = Instant::now();
        // Unused capacity is kept for at most one burst.
        let earliest = now.checked_sub(burst).unwrap_or(now);
        let slot = (*next).max(earliest);
        *next = slot + interval;
        slot
    };
    let mut unused = Unused {
        next_free: cursor,
        slot: Some(wait_until),
        interval,
    };
    tokio::time::sleep_until(wait_until).await;
    unused.slot = None;
}

/// A reserved slot whose wait was abandoned: dropped, it gives the slot
/// back by moving the next free slot one interval earlier (the abandoned
/// one is filled by the next caller instead of left empty).
struct Unused<'a> {
    next_free: &'a Mutex<Instant>,
    slot: Option<Instant>,
    /// The interval it was reserved at (the pace may have changed since).
    interval: Duration,
}

impl Drop for Unused<'_> {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        let mut next = self.next_free.lock().unwrap();
        // A slot already past was as good as used; one at or after the
        // next free slot was given back already (another abandoned wait
        // moved the next free slot before it).
        if slot > Instant::now() && slot < *next {
            *next -= self.interval;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn spreads_sends_to_the_configured_rate() {
        // 600/min = one every 100 ms, bursts of 5.
        let l = RateLimiter::per_minute(600, 5);
        tokio::time::sleep(Duration::from_secs(1)).await; // idle: a full burst is available
        let start = Instant::now();
        for _ in 0..25 {
            l.acquire(Priority::Urgent).await;
        }
        // 5 go at once, the other 20 at 100 ms intervals.
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_takes_its_part_of_the_rate() {
        // 600/min shared by 2 processes: one every 200 ms here, bursts of 2.
        let l = RateLimiter::per_minute(600, 4);
        l.set_share(2);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let start = Instant::now();
        for _ in 0..12 {
            l.acquire(Priority::Urgent).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_wait_gives_its_slot_back() {
        // 60/min = one a second, no burst: the first goes now, the next at 1 s.
        let l = RateLimiter::per_minute(60, 1);
        l.acquire(Priority::Urgent).await;
        let start = Instant::now();
        // Reserves the 1 s slot, then gives up (cancelled).
        let gave_up =
            tokio::time::timeout(Duration::from_millis(300), l.acquire(Priority::Urgent)).await;
        assert!(gave_up.is_err());
        // The slot it left is taken by the next caller, not wasted.
        l.acquire(Priority::Urgent).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        l.acquire(Priority::Urgent).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slowdown_halves_the_rate_until_it_ends() {
        // 600/min = one every 100 ms, no burst; slowed: one every 200 ms.
        let l = RateLimiter::per_minute(600, 1);
        let start = Instant::now();
        l.slow_down(start + Duration::from_secs(1));
        assert_eq!(l.slowed_for(), Some(Duration::from_secs(1)));
        for _ in 0..6 {
            l.acquire(Priority::Urgent).await;
        }
        // At 0, 200, …, 1000 ms (the last reserved while slowed, so the
        // next is at 1200); then the full rate again: 1200, 1300, … 1600.
        assert_eq!(start.elapsed(), Duration::from_millis(1000));
        for _ in 0..5 {
            l.acquire(Priority::Urgent).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1600));
        assert_eq!(l.slowed_for(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_takes_its_share_and_urgent_the_rest() {
        // 600/min = one every 100 ms, no burst; bulk may take a quarter:
        // one every 400 ms.
        let l = std::sync::Arc::new(RateLimiter::per_minute(600, 1).with_bulk_share(0.25));
        let start = Instant::now();
        for _ in 0..5 {
            l.acquire(Priority::Bulk).await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(1600));
        // A campaign keeps bulk sends waiting; an urgent one arriving meanwhile
        // waits no longer than one interval.
        let bulk = {
            let l = l.clone();
            tokio::spawn(async move {
                for _ in 0..100 {
                    l.acquire(Priority::Bulk).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let asked = Instant::now();
        l.acquire(Priority::Urgent).await;
        assert!(
            asked.elapsed() <= Duration::from_millis(100),
            "{:?}",
            asked.elapsed()
        );
        bulk.abort();
    }
}
