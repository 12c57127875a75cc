//! A send-rate limiter (GCRA): each caller reserves the next free slot and
//! sleeps until it, so a big campaign is spread out to exactly the
//! configured rate instead of tripping the provider's quota and coming back
//! as 429s. Up to `burst` sends may go at once after an idle period.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    burst: Duration,
    next_free: Mutex<Instant>,
}

impl RateLimiter {
    pub fn per_minute(rate: u32, burst: u32) -> RateLimiter {
        let interval = Duration::from_secs(60) / rate.max(1);
        RateLimiter {
            interval,
            // `burst` reservations fit between now - this and now.
            burst: interval * (burst.max(1) - 1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Waits until this caller may send.
    pub async fn acquire(&self) {
        let wait_until = {
            let mut next = self.next_free.lock().unwrap();
            let now = Instant::now();
            // Unused capacity is kept for at most one burst.
            let earliest = now.checked_sub(self.burst).unwrap_or(now);
            let slot = (*next).max(earliest);
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(wait_until).await;
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
            l.acquire().await;
        }
        // 5 go at once, the other 20 at 100 ms intervals.
        assert_eq!(start.elapsed(), Duration::from_millis(2000));
    }
}
