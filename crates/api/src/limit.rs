//! Per-tenant request limits: one tenant's runaway script gets 429s instead of starving the
//! others or running up the table's bill. The admin scope is not limited.

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// `CAPACITY/RATE`: a burst of CAPACITY requests, refilled at RATE a second (the controller's
/// syntax for its AWS buckets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TenantRate {
    pub burst: NonZeroU32,
    pub per_second: f64,
}

impl FromStr for TenantRate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage =
            || format!("{text:?}: expected CAPACITY/RATE, e.g. 50/10 (a burst of 50, 10 a second)");
        let (burst, rate) = text.split_once('/').ok_or_else(usage)?;
        let burst = burst
            .trim()
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or_else(usage)?;
        let per_second = rate
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r >= 0.001 && *r <= 1_000_000.0)
            .ok_or_else(usage)?;
        Ok(Self { burst, per_second })
    }
}

/// The buckets, one per tenant, made on a tenant's first request.
#[derive(Debug)]
pub struct TenantLimits {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl TenantLimits {
    #[must_use]
    pub fn new(rate: TenantRate) -> Self {
        // A rate that makes no period (zero, negative, not a number) is one a second.
        let quota = Duration::try_from_secs_f64(1.0 / rate.per_second)
            .ok()
            .and_then(Quota::with_period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(rate.burst);
        Self {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the tenant's bucket, or says how long until one is left.
    pub fn check(&self, tenant: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&tenant.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_capacity_over_rate() {
        let rate: TenantRate = "50/10".parse().unwrap();
        assert_eq!(rate.burst.get(), 50);
        assert!((rate.per_second - 10.0).abs() < f64::EPSILON);
        let slow: TenantRate = "3/0.5".parse().unwrap();
        assert!((slow.per_second - 0.5).abs() < f64::EPSILON);
        for bad in [
            "", "50", "0/10", "50/0", "50/x", "x/10", "50/-1", "50/inf", "50/NaN",
        ] {
            let err = bad.parse::<TenantRate>().unwrap_err();
            assert!(err.contains("CAPACITY/RATE"), "{bad}: {err}");
        }
    }

    #[test]
    fn each_tenant_has_its_own_bucket() {
        let limits = TenantLimits::new("2/0.001".parse().unwrap());
        assert!(limits.check("acme").is_ok());
        assert!(limits.check("acme").is_ok());
        let wait = limits.check("acme").unwrap_err();
        assert!(wait > Duration::from_secs(100), "{wait:?}");
        assert!(limits.check("globex").is_ok());
        for odd in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let limits = TenantLimits::new(TenantRate {
                burst: NonZeroU32::MIN,
                per_second: odd,
            });
            assert!(limits.check("acme").is_ok(), "{odd}");
        }
    }
}
