//! Retry timing: exponential backoff with full jitter, the check-in circuit breaker, and the
//! scanner's breaker.
//!
//! Nothing here sleeps or reads a clock: callers pass `now` and a random source, so tests drive
//! time and randomness.
//!
//! - **Backoff** ([`Backoff`]): after the n-th failure in a row the delay is drawn uniformly
//!   from `[0, min(cap, base · 2ⁿ⁻¹)]` ("full jitter"), so a fleet that lost the manager at once
//!   does not come back in step.
//! - **Check-in breaker** ([`CircuitBreaker`]): after `threshold` failures in a row it opens;
//!   while open the agent probes once per `cap`. The first success closes it. Opening and closing
//!   are reported once each, so the log says "manager unreachable" once, not every 5 minutes.
//! - **Retry policy** ([`RetryPolicy`]): the two together, plus `Retry-After` (waited at least)
//!   and refusals an administrator must fix (a revoked certificate: retried at the cap).
//! - **Scanner breaker** ([`ScanBreaker`]): after `threshold` failed scans in a row, scans are
//!   skipped for a period that doubles with every further failure, up to a cap.

use std::time::{Duration, Instant};

/// A source of random numbers for jitter.
pub trait Random: Send {
    fn next_u64(&mut self) -> u64;
}

/// SplitMix64: small, fast, and good enough for jitter (not for secrets).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// A generator seeded from the operating system.
    pub fn from_entropy() -> Self {
        let mut seed = [0u8; 8];
        if getrandom::fill(&mut seed).is_err() {
            // Jitter only spreads load; the time and pid are a good enough seed then.
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            return SplitMix64::seeded(nanos.as_nanos() as u64 ^ u64::from(std::process::id()) << 32);
        }
        SplitMix64::seeded(u64::from_le_bytes(seed))
    }
}

impl Random for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A duration drawn uniformly from `[0, max]` (millisecond resolution).
pub fn uniform(rng: &mut dyn Random, max: Duration) -> Duration {
    let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if max_ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rng.next_u64() % (max_ms.saturating_add(1)))
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff { base, cap: cap.max(base), failures: 0 }
    }

    /// The upper bound of the next delay: `min(cap, base · 2^failures)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.base.checked_mul(factor).unwrap_or(self.cap).min(self.cap)
    }

    /// Counts a failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self, rng: &mut dyn Random) -> Duration {
        let delay = uniform(rng, self.ceiling());
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }
}

/// A change of the breaker's state, to be logged once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    Opened,
    Closed,
}

/// Opens after `threshold` failures in a row; closes at the first success.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    consecutive: u32,
    opened_at: Option<Instant>,
}

impl CircuitBreaker {
    pub fn new(threshold: u32) -> Self {
        CircuitBreaker { threshold: threshold.max(1), consecutive: 0, opened_at: None }
    }

    pub fn is_open(&self) -> bool {
        self.opened_at.is_some()
    }

    /// When it opened, while it is open.
    pub fn opened_at(&self) -> Option<Instant> {
        self.opened_at
    }

    pub fn record_failure(&mut self, now: Instant) -> Option<BreakerChange> {
        self.consecutive = self.consecutive.saturating_add(1);
        if self.opened_at.is_none() && self.consecutive >= self.threshold {
            self.opened_at = Some(now);
            return Some(BreakerChange::Opened);
        }
        None
    }

    pub fn record_success(&mut self) -> Option<BreakerChange> {
        self.consecutive = 0;
        self.opened_at.take().map(|_| BreakerChange::Closed)
    }
}

/// How a check-in failed, as far as timing is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused or reset, a timeout, a 5xx: back off.
    Transient,
    /// The manager asked to come back later (429/503 with `Retry-After`).
    RetryAfter(Duration),
    /// The manager refuses this agent (revoked certificate, machine ID mismatch, not approved):
    /// only an administrator can fix it, so try again at the cap.
    Refused,
}

/// The check-in retry policy: backoff, breaker, `Retry-After`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    backoff: Backoff,
    breaker: CircuitBreaker,
}

/// Longest `Retry-After` honoured as given; longer ones are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl RetryPolicy {
    /// 1 s doubling to 5 minutes; the breaker opens after 5 failures in a row.
    pub fn standard() -> Self {
        RetryPolicy::new(Duration::from_secs(1), Duration::from_secs(300), 5)
    }

    pub fn new(base: Duration, cap: Duration, threshold: u32) -> Self {
        RetryPolicy { backoff: Backoff::new(base, cap), breaker: CircuitBreaker::new(threshold) }
    }

    /// Counts a failure; returns the delay before the next try and whether the breaker opened.
    pub fn on_failure(
        &mut self,
        kind: FailureKind,
        now: Instant,
        rng: &mut dyn Random,
    ) -> (Duration, Option<BreakerChange>) {
        let change = self.breaker.record_failure(now);
        let jittered = self.backoff.next_delay(rng);
        let cap = self.backoff.cap();
        let delay = match kind {
            FailureKind::Refused => cap,
            FailureKind::RetryAfter(after) => {
                let backoff = if self.breaker.is_open() { cap } else { jittered };
                backoff.max(after.min(MAX_RETRY_AFTER))
            }
            FailureKind::Transient if self.breaker.is_open() => cap,
            FailureKind::Transient => jittered,
        };
        (delay, change)
    }

    /// A check-in got through: back to the first delay; reports when the breaker closed.
    pub fn on_success(&mut self) -> Option<BreakerChange> {
        self.backoff.reset();
        self.breaker.record_success()
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}

/// Isolates a scanner that keeps failing: after `threshold` failures in a row, scans are
/// skipped for `base`, then twice as long after every further failure, up to `cap`.
#[derive(Debug, Clone)]
pub struct ScanBreaker {
    threshold: u32,
    base: Duration,
    cap: Duration,
    consecutive: u32,
    skip_until: Option<Instant>,
}

impl ScanBreaker {
    /// 3 failures; skipped for 10 minutes, doubling to 6 hours.
    pub fn standard() -> Self {
        ScanBreaker::new(3, Duration::from_secs(600), Duration::from_secs(6 * 3600))
    }

    pub fn new(threshold: u32, base: Duration, cap: Duration) -> Self {
        ScanBreaker { threshold: threshold.max(1), base, cap: cap.max(base), consecutive: 0, skip_until: None }
    }

    /// Whether a scheduled scan may run at `now`.
    pub fn allows(&self, now: Instant) -> bool {
        self.skip_until.is_none_or(|until| now >= until)
    }

    /// Until when scans are skipped, if they are.
    pub fn skip_until(&self) -> Option<Instant> {
        self.skip_until
    }

    /// Failed scans in a row.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    /// Counts a failed scan; returns the skip period when scans are now skipped.
    pub fn record_failure(&mut self, now: Instant) -> Option<Duration> {
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive < self.threshold {
            return None;
        }
        let doublings = (self.consecutive - self.threshold).min(31);
        let period = self.base.checked_mul(1u32 << doublings).unwrap_or(self.cap).min(self.cap);
        self.skip_until = Some(now + period);
        Some(period)
    }

    /// Counts a good scan; returns true when the scanner had been isolated (or failing).
    pub fn record_success(&mut self) -> bool {
        let was_failing = self.consecutive >= self.threshold;
        self.consecutive = 0;
        self.skip_until = None;
        was_failing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Always returns the same number: full jitter then picks a fixed share of the ceiling.
    struct Fixed(u64);
    impl Random for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.0
        }
    }

    #[test]
    fn ceiling_doubles_from_one_second_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut ceilings = Vec::new();
        for _ in 0..12 {
            ceilings.push(b.ceiling().as_secs());
            b.next_delay(&mut Fixed(0));
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        for _ in 0..100 {
            b.next_delay(&mut Fixed(0));
        }
        assert_eq!(b.ceiling(), Duration::from_secs(300), "no overflow after many failures");
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_stays_within_zero_and_the_ceiling_and_spreads() {
        let mut rng = SplitMix64::seeded(42);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        for _ in 0..8 {
            b.next_delay(&mut rng);
        }
        // Ceiling now 256 s: many draws cover the range, none beyond it.
        let ceiling = b.ceiling();
        let draws: Vec<Duration> = (0..2000).map(|_| uniform(&mut rng, ceiling)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        let low = draws.iter().filter(|d| **d < ceiling / 4).count();
        let high = draws.iter().filter(|d| **d > ceiling * 3 / 4).count();
        assert!((350..650).contains(&low), "about a quarter below 1/4: {low}");
        assert!((350..650).contains(&high), "about a quarter above 3/4: {high}");
        // The extremes are reachable: 0 and the ceiling itself.
        assert_eq!(uniform(&mut Fixed(0), ceiling), Duration::ZERO);
        assert_eq!(uniform(&mut Fixed(ceiling.as_millis() as u64), ceiling), ceiling);
    }

    #[test]
    fn seeded_generators_repeat() {
        let a: Vec<u64> = {
            let mut r = SplitMix64::seeded(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = SplitMix64::seeded(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }

    #[test]
    fn breaker_opens_after_five_failures_and_probes_at_the_cap() {
        let t0 = Instant::now();
        let mut policy = RetryPolicy::standard();
        let mut rng = Fixed(u64::MAX);
        let mut changes = Vec::new();
        let mut delays = Vec::new();
        for i in 0..8 {
            let (delay, change) = policy.on_failure(FailureKind::Transient, t0 + Duration::from_secs(i), &mut rng);
            delays.push(delay);
            changes.push(change);
        }
        assert_eq!(
            changes,
            [None, None, None, None, Some(BreakerChange::Opened), None, None, None],
            "opened once, on the fifth failure"
        );
        assert!(policy.breaker().is_open());
        assert_eq!(policy.breaker().opened_at(), Some(t0 + Duration::from_secs(4)));
        for d in &delays[..4] {
            assert!(*d <= Duration::from_secs(8), "{d:?}");
        }
        for d in &delays[4..] {
            assert_eq!(*d, Duration::from_secs(300), "open: one probe per cap");
        }
        assert_eq!(policy.on_success(), Some(BreakerChange::Closed));
        assert_eq!(policy.on_success(), None, "closing is reported once");
        assert!(!policy.breaker().is_open());
        let (delay, _) = policy.on_failure(FailureKind::Transient, t0, &mut Fixed(u64::MAX));
        assert!(delay <= Duration::from_secs(1), "backoff starts over: {delay:?}");
    }

    #[test]
    fn retry_after_is_waited_at_least_and_refusals_wait_the_cap() {
        let now = Instant::now();
        let mut policy = RetryPolicy::standard();
        let (delay, _) = policy.on_failure(FailureKind::RetryAfter(Duration::from_secs(42)), now, &mut Fixed(0));
        assert_eq!(delay, Duration::from_secs(42));
        let (delay, _) = policy.on_failure(FailureKind::RetryAfter(Duration::from_secs(86_400)), now, &mut Fixed(0));
        assert_eq!(delay, MAX_RETRY_AFTER, "an absurd Retry-After is cut");
        let mut policy = RetryPolicy::standard();
        let (delay, _) = policy.on_failure(FailureKind::Refused, now, &mut Fixed(0));
        assert_eq!(delay, Duration::from_secs(300));
    }

    #[test]
    fn scan_breaker_isolates_a_failing_scanner_for_growing_periods() {
        let t0 = Instant::now();
        let mut b = ScanBreaker::new(3, Duration::from_secs(600), Duration::from_secs(3600));
        assert!(b.allows(t0));
        assert_eq!(b.record_failure(t0), None);
        assert_eq!(b.record_failure(t0), None);
        assert!(b.allows(t0), "two failures: still scanning");
        assert_eq!(b.record_failure(t0), Some(Duration::from_secs(600)));
        assert!(!b.allows(t0 + Duration::from_secs(599)));
        assert!(b.allows(t0 + Duration::from_secs(600)));
        assert_eq!(b.record_failure(t0), Some(Duration::from_secs(1200)));
        assert_eq!(b.record_failure(t0), Some(Duration::from_secs(2400)));
        assert_eq!(b.record_failure(t0), Some(Duration::from_secs(3600)), "capped");
        assert_eq!(b.record_failure(t0), Some(Duration::from_secs(3600)));
        assert_eq!(b.consecutive_failures(), 7);
        assert!(b.record_success());
        assert!(b.allows(t0));
        assert!(!b.record_success(), "a healthy scanner reports no recovery");
    }
}
