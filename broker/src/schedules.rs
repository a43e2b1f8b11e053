//! Periodic jobs (celery beat, Jetstream's beat): a schedule is a job template fired on a cron
//! expression or at a fixed interval. Definitions live in `schedule:<name>` hashes, the next
//! tick of each in the `schedules` zset. Any number of beat loops (`sluice beat`, and every
//! `sluice serve`) may run: `lua/fire.lua` fires a tick only if the schedule is still due at
//! the time the loop read, so each tick creates exactly one job. A beat that was down does
//! not replay missed ticks: it fires the overdue one once and moves on from now.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::Serialize;
use serde_json::Value;

use crate::client::Broker;
use crate::error::Error;
use crate::job::NewJob;
use crate::keys::validate_executor;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A cron expression (5 fields, or 6 with seconds first), UTC.
    Cron(String),
    /// Every so often.
    Every(Duration),
}

/// A schedule as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Its name (part of the key).
    pub name: String,
    /// Executor kind of the jobs it makes.
    pub executor: String,
    /// Params of the jobs it makes.
    pub params: Value,
    /// The cron expression, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// The interval, if any (humantime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
    /// Next tick (RFC 3339), from the zset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_tick: Option<String>,
    /// Last tick fired (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_tick: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

impl Spec {
    /// Checks the spec.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad cron expression or a zero interval.
    pub fn check(&self) -> Result<(), Error> {
        match self {
            Spec::Every(d) if d.is_zero() => {
                Err(Error::Invalid("every: must be more than 0".into()))
            }
            Spec::Every(_) => Ok(()),
            Spec::Cron(c) => croner::Cron::from_str(c)
                .map(|_| ())
                .map_err(|e| Error::Invalid(format!("cron: {c:?}: {e}"))),
        }
    }

    /// The first tick strictly after `after_ms`.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Spec::Every(d) => {
                let step = (d.as_millis() as u64).max(1);
                Some((after_ms / step + 1) * step)
            }
            Spec::Cron(c) => {
                let cron = croner::Cron::from_str(c).ok()?;
                let after = chrono::DateTime::from_timestamp_millis(i64::try_from(after_ms).ok()?)?;
                let next = cron.find_next_occurrence(&after, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

fn parse(h: &HashMap<String, String>) -> Option<(Schedule, Spec)> {
    let spec = match (h.get("cron"), h.get("every")) {
        (Some(c), _) => Spec::Cron(c.clone()),
        (None, Some(e)) => Spec::Every(humantime::parse_duration(e).ok()?),
        _ => return None,
    };
    let s = Schedule {
        name: h.get("name")?.clone(),
        executor: h.get("executor")?.clone(),
        params: h
            .get("params")
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null),
        cron: h.get("cron").cloned(),
        every: h.get("every").cloned(),
        next_tick: h.get("next_tick").cloned(),
        last_tick: h.get("last_tick").cloned(),
    };
    Some((s, spec))
}

/// Beats every `every` until `stop` turns true, logging what it fires.
pub async fn beat(b: Broker, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match b.beat_once().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(fired = n, "beat"),
            Err(e) => tracing::warn!(error = %e, "beat failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

impl Broker {
    /// Adds (or replaces) a schedule; its first tick is the next one from now. Its params are
    /// checked against the kind's schema now ([`Broker::check_params`]), not at each tick.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, executor, params or spec; Redis errors.
    pub async fn add_schedule(
        &self,
        name: &str,
        executor: &str,
        params: &Value,
        spec: &Spec,
    ) -> Result<(), Error> {
        if name.is_empty()
            || name.len() > 128
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(Error::Invalid(
                "schedule name must be 1-128 characters, no spaces".into(),
            ));
        }
        validate_executor(executor)?;
        self.check_params(executor, params).await?;
        spec.check()?;
        let first = spec
            .next_after(now_ms())
            .ok_or_else(|| Error::Invalid("the schedule never fires".into()))?;
        let (kind, value) = match spec {
            Spec::Cron(c) => ("cron", c.clone()),
            Spec::Every(d) => ("every", humantime::format_duration(*d).to_string()),
        };
        let k = self.keys();
        let mut c = self.conn().await?;
        let mut p = redis::pipe();
        p.atomic()
            .del(k.schedule(name))
            .hset_multiple(
                k.schedule(name),
                &[
                    ("name", name),
                    ("executor", executor),
                    ("params", &params.to_string()),
                    (kind, &value),
                    ("next_tick", &rfc3339(first)),
                ],
            )
            .zadd(k.schedules(), name, first);
        let () = p.query_async(&mut *c).await?;
        Ok(())
    }
    /// Removes a schedule; true if it existed.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn remove_schedule(&self, name: &str) -> Result<bool, Error> {
        let k = self.keys();
        let mut c = self.conn().await?;
        let (n, _): (i64, i64) = redis::pipe()
            .atomic()
            .zrem(k.schedules(), name)
            .del(k.schedule(name))
            .query_async(&mut *c)
            .await?;
        Ok(n > 0)
    }
    /// Every schedule, by name.
    ///
    /// # Errors
    /// Redis errors.
    pub async fn schedules(&self) -> Result<Vec<Schedule>, Error> {
        let mut c = self.conn().await?;
        let names: Vec<String> = c.zrange(self.keys().schedules(), 0, -1).await?;
        let mut out = Vec::new();
        for n in names {
            let h: HashMap<String, String> = c.hgetall(self.keys().schedule(&n)).await?;
            if let Some((s, _)) = parse(&h) {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
    /// One beat: fires every due schedule once (`lua/fire.lua`). Returns how many jobs this
    /// call created (ticks another beat fired first are not counted).
    ///
    /// # Errors
    /// Redis errors.
    pub async fn beat_once(&self) -> Result<usize, Error> {
        let now = now_ms();
        let mut c = self.conn().await?;
        let due: Vec<(String, f64)> = c
            .zrangebyscore_limit_withscores(self.keys().schedules(), "-inf", now, 0, 100)
            .await?;
        let mut fired = 0;
        for (name, tick) in due {
            let tick = tick as u64;
            let h: HashMap<String, String> = c.hgetall(self.keys().schedule(&name)).await?;
            let Some((s, spec)) = parse(&h) else { continue };
            // Missed ticks are not replayed: the next tick is counted from now.
            let Some(next) = spec.next_after(tick.max(now)) else {
                continue;
            };
            let mut job: NewJob = self.new_job(&s.executor, s.params.clone());
            job.extra
                .push(("schedule".into(), format!("{name}@{}", rfc3339(tick))));
            if self
                .scripts()
                .fire(&mut *c, &name, tick, next, &job)
                .await?
                .is_some()
            {
                fired += 1;
            }
        }
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_ticks() {
        let every = Spec::Every(Duration::from_secs(10));
        assert_eq!(every.next_after(0), Some(10_000));
        assert_eq!(every.next_after(10_000), Some(20_000));
        assert_eq!(every.next_after(15_500), Some(20_000));
        let cron = Spec::Cron("*/5 * * * *".into());
        assert!(cron.check().is_ok());
        // 2026-11-23T11:31:00Z -> 11:35:00Z
        let t = 1_795_433_460_000;
        assert_eq!(cron.next_after(t).map(|n| n - t), Some(4 * 60_000));
        assert!(Spec::Cron("every day".into()).check().is_err());
        assert!(Spec::Every(Duration::ZERO).check().is_err());
    }
}
