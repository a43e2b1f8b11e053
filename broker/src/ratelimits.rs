//! Rate limits of executor kinds: at most N job starts in any window of a period, kept in
//! the `rate_limits` hash (kind -> "N/<ms>ms") and enforced by `lua/claim.lua` with a
//! sliding log of starts (`starts:<kind>`). A job's own rate key (`rate_key` and
//! `rate_limit`, given at submit) is enforced the same way per key; see broker/README.md.

use std::time::SystemTime;

use redis::AsyncCommands;
use serde::Serialize;

use crate::client::Broker;
use crate::error::Error;
use crate::job::Rate;
use crate::keys::validate_executor;

/// One kind's limit, as `GET /rate-limits` and `sluice rate-limit` show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct KindLimit {
    /// The executor kind.
    pub executor: String,
    /// "N/period", e.g. "100/1s".
    pub limit: String,
    /// Starts allowed per window.
    pub max: u32,
    /// The window, in ms.
    pub period_ms: u64,
    /// Starts in the window that ends now.
    pub started: u64,
}

impl Broker {
    /// Every kind's rate limit, by kind name, with its starts in the current window.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn rate_limits(&self) -> Result<Vec<KindLimit>, Error> {
        let k = self.keys();
        let mut c = self.conn().await?;
        let stored: std::collections::BTreeMap<String, String> = c.hgetall(k.rate_limits()).await?;
        let now = crate::scripts::unix_ms(SystemTime::now());
        let mut out = Vec::with_capacity(stored.len());
        for (executor, text) in stored {
            let Ok(rate) = text.parse::<Rate>() else {
                continue;
            };
            let period_ms = rate.period.as_millis() as u64;
            let since = format!("({}", now.saturating_sub(period_ms));
            let started: u64 = c.zcount(k.starts(&executor, None), since, "+inf").await?;
            out.push(KindLimit {
                limit: rate.human(),
                max: rate.max,
                period_ms,
                started,
                executor,
            });
        }
        Ok(out)
    }

    /// Sets (Some) or lifts (None) a kind's rate limit; true when the kind had one. Claims
    /// follow it from their next call; executors held back by the old limit claim again
    /// within a second.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad kind name; Redis errors.
    pub async fn set_rate_limit(&self, executor: &str, rate: Option<Rate>) -> Result<bool, Error> {
        validate_executor(executor)?;
        let k = self.keys();
        let mut c = self.conn().await?;
        let had: bool = c.hexists(k.rate_limits(), executor).await?;
        match rate {
            Some(r) => {
                c.hset::<_, _, _, ()>(k.rate_limits(), executor, r.to_string())
                    .await?
            }
            None => c.hdel::<_, _, ()>(k.rate_limits(), executor).await?,
        }
        Ok(had)
    }
}
