//! The `stats` hash the scripts count into, read once and parsed: `<event>:<executor>`
//! counters (includes/emit.lua) and the claim-wait histogram of each kind (lua/claim.lua's
//! `claim_wait_le_<bucket>:<executor>` and `claim_wait_ms_sum:<executor>`). `GET /metrics`
//! renders it for Prometheus; the console's overview shows rates and percentiles from it.

use std::collections::{BTreeMap, HashMap};

use crate::client::Broker;
use crate::error::Error;

/// Claim-wait buckets of lua/claim.lua, in ms ("inf" last).
pub const WAIT_BUCKETS_MS: [&str; 11] = [
    "1", "5", "10", "50", "100", "500", "1000", "5000", "30000", "300000", "inf",
];

/// One kind's claim waits (ready to claimed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimWaits {
    /// Claims per bucket of [`WAIT_BUCKETS_MS`] (not cumulative).
    pub buckets: [u64; WAIT_BUCKETS_MS.len()],
    /// Sum of every wait, ms.
    pub sum_ms: u64,
}

impl ClaimWaits {
    /// The bucket bound (ms, or "inf") the quantile `q` of the claims falls in; None before
    /// any claim.
    pub fn quantile(&self, q: f64) -> Option<&'static str> {
        let total: u64 = self.buckets.iter().sum();
        let mut seen = 0;
        for (b, n) in WAIT_BUCKETS_MS.iter().zip(self.buckets) {
            seen += n;
            if total > 0 && seen as f64 >= q * total as f64 {
                return Some(b);
            }
        }
        None
    }
}

/// The `stats` hash, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// `(event, executor)` -> how many times it happened.
    pub events: BTreeMap<(String, String), u64>,
    /// Executor -> its claim waits.
    pub waits: BTreeMap<String, ClaimWaits>,
}

impl Stats {
    /// Parses the hash's fields (a field of another shape is left out).
    pub fn parse(fields: HashMap<String, u64>) -> Self {
        let mut s = Stats::default();
        for (field, n) in fields {
            let Some((name, executor)) = field.rsplit_once(':') else {
                continue;
            };
            if let Some(b) = name.strip_prefix("claim_wait_le_") {
                if let Some(i) = WAIT_BUCKETS_MS.iter().position(|x| *x == b) {
                    s.waits.entry(executor.to_string()).or_default().buckets[i] += n;
                }
            } else if name == "claim_wait_ms_sum" {
                s.waits.entry(executor.to_string()).or_default().sum_ms += n;
            } else {
                s.events.insert((name.to_string(), executor.to_string()), n);
            }
        }
        s
    }

    /// How many times `event` happened to jobs of `executor`.
    pub fn event(&self, event: &str, executor: &str) -> u64 {
        self.events
            .get(&(event.to_string(), executor.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

impl Broker {
    /// The `stats` hash, parsed.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn stats(&self) -> Result<Stats, Error> {
        use redis::AsyncCommands;
        let mut c = self.conn().await?;
        let fields: HashMap<String, u64> = c.hgetall(self.keys().stats()).await?;
        Ok(Stats::parse(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_into_events_and_waits() {
        let fields = HashMap::from([
            ("completed:solver".to_string(), 7),
            ("claim_wait_le_1:solver".to_string(), 90),
            ("claim_wait_le_50:solver".to_string(), 9),
            ("claim_wait_le_inf:solver".to_string(), 1),
            ("claim_wait_ms_sum:solver".to_string(), 400_500),
            ("claim_wait_le_7:solver".to_string(), 3),
            ("no-colon".to_string(), 1),
        ]);
        let s = Stats::parse(fields);
        assert_eq!(s.event("completed", "solver"), 7);
        assert_eq!(s.event("failed", "solver"), 0);
        let w = &s.waits["solver"];
        assert_eq!(w.sum_ms, 400_500);
        assert_eq!(
            w.buckets.iter().sum::<u64>(),
            100,
            "the unknown bucket is left out"
        );
        assert_eq!(w.quantile(0.5), Some("1"));
        assert_eq!(w.quantile(0.99), Some("50"));
        assert_eq!(w.quantile(1.0), Some("inf"));
        assert_eq!(ClaimWaits::default().quantile(0.5), None);
    }
}
