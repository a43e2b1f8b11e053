//! A job's own transitions: submit, claim, the running attempt's calls, its endings and
//! the sweeps (reap, promote, unhold) that move jobs by time.

use super::*;

impl Scripts {
    pub(super) fn submitted(r: Reply) -> Result<Submitted, Error> {
        let id = || {
            r.int(0)
                .filter(|n| *n > 0)
                .map(|n| JobId(n as u64))
                .ok_or_else(|| Error::Protocol {
                    script: "submit",
                    reply: "no id".into(),
                })
        };
        match r.code {
            code::CLUSTER => Err(Error::Cluster(r.text(0).unwrap_or_default())),
            code::CONFLICT => Err(Error::Conflict(format!(
                "this Idempotency-Key made job {} from another request; use a new key",
                id()?
            ))),
            1 => Ok(Submitted {
                id: id()?,
                status: Some(r.status(1)?),
                created: true,
            }),
            _ => Ok(Submitted {
                id: id()?,
                status: r.text(1).and_then(|s| s.parse().ok()),
                created: false,
            }),
        }
    }

    /// Runs `lua/submit.lua`: creates `job_N` PENDING on its queue, or SCHEDULED when
    /// `run_at` is in the future. The caller has validated `job` (see `Broker::submit`).
    ///
    /// # Returns
    /// The new id and status, or the job an `idempotency_key` or `unique_key` made before.
    pub async fn submit<C: ConnectionLike>(
        &self,
        c: &mut C,
        job: &NewJob,
    ) -> Result<Submitted, Error> {
        Self::submitted(self.submit_call(job)?.run(c, "submit").await?)
    }

    /// Runs `lua/submit.lua` for many jobs in one pipeline (one round trip): each job's own
    /// outcome (a refused cluster or idempotency key fails that job only).
    pub async fn submit_many<C: ConnectionLike>(
        &self,
        c: &mut C,
        jobs: &[NewJob],
    ) -> Result<Vec<Result<Submitted, Error>>, Error> {
        let calls = jobs
            .iter()
            .map(|j| self.submit_call(j))
            .collect::<Result<Vec<_>, _>>()?;
        let mut p = redis::pipe();
        p.load_script(&self.submit).ignore();
        for inv in &calls {
            p.invoke_script(inv);
        }
        let replies: Vec<Value> = p.query_async(c).await?;
        Ok(replies
            .into_iter()
            .map(|v| Reply::parse("submit", v).and_then(Self::submitted))
            .collect())
    }

    /// Runs `lua/claim.lua`: up to `count` PENDING jobs of `executor` become RUNNING under
    /// a fresh lease token and a lease of `lease`.
    pub async fn claim<C: ConnectionLike>(
        &self,
        c: &mut C,
        executor: &str,
        worker: &str,
        count: usize,
        lease: Duration,
    ) -> Result<Claims, Error> {
        let k = &self.keys;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let r = self
            .claim
            .key(k.queue(executor))
            .key(k.leases())
            .key(k.events())
            .key(k.wake(executor))
            .arg(k.prefix())
            .arg(worker)
            .arg(&token)
            .arg(ms(lease))
            .arg(count)
            .arg(executor)
            .run(c, "claim")
            .await?;
        let throttled_for = r
            .int(0)
            .filter(|ms| *ms > 0)
            .map(|ms| Duration::from_millis(ms as u64));
        let jobs = r
            .rest
            .into_iter()
            .skip(1)
            .map(|job| {
                let f = Reply::parse(
                    "claim",
                    Value::Array([vec![Value::Int(1)], as_array(job)].concat()),
                )?;
                let id = f.int(0).ok_or_else(|| protocol("claim", &Value::Nil))?;
                Ok(Claimed {
                    id: JobId(id as u64),
                    attempt: f.int(1).unwrap_or(1) as u32,
                    max_attempts: f.int(2).unwrap_or(1) as u32,
                    timeout: Duration::from_millis(f.int(3).unwrap_or(0) as u64),
                    params: match f.rest.get(4) {
                        Some(Value::BulkString(b)) => b.clone(),
                        _ => Vec::new(),
                    },
                    token: token.clone(),
                    inputs: f.int(5) == Some(1),
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Claims {
            jobs,
            throttled_for,
        })
    }

    /// Runs `lua/heartbeat.lua`: extends the lease by `lease` from now.
    ///
    /// # Returns
    /// `true` when a stop was requested and the executor must stop the job.
    pub async fn heartbeat<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        lease: Duration,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        Ok(self
            .heartbeat
            .key(k.job(id))
            .key(k.leases())
            .arg(id.0)
            .arg(token)
            .arg(ms(lease))
            .run(c, "heartbeat")
            .await?
            .check(id, "heartbeat")?
            .code
            == 2)
    }

    /// Runs `lua/progress.lua`: records `progress` (JSON) for the running attempt.
    ///
    /// # Returns
    /// `true` when a stop was requested and the executor must stop the job.
    pub async fn progress<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        progress: &serde_json::Value,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        Ok(self
            .progress
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(progress.to_string())
            .run(c, "progress")
            .await?
            .check(id, "report progress")?
            .code
            == 2)
    }

    /// Runs `lua/log.lua`: appends `lines` (joined by newlines) to the job's events.
    ///
    /// # Returns
    /// True when a stop was requested: the executor must stop the job.
    pub async fn log<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        lines: &str,
    ) -> Result<bool, Error> {
        let k = &self.keys;
        Ok(self
            .log
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(lines)
            .run(c, "log")
            .await?
            .check(id, "log")?
            .code
            == 2)
    }

    fn complete_call(&self, id: JobId, token: &str, result: &[u8]) -> ScriptInvocation<'_> {
        let k = &self.keys;
        let mut inv = self.complete.prepare_invoke();
        inv.key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(result);
        inv
    }

    /// Runs `lua/complete.lua`: RUNNING -> COMPLETED with `result` (MessagePack).
    pub async fn complete<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        result: &[u8],
    ) -> Result<(), Error> {
        self.complete_call(id, token, result)
            .run(c, "complete")
            .await?
            .check(id, "complete")?;
        Ok(())
    }

    /// Runs `lua/complete.lua` for many attempts in one pipeline; one outcome per job.
    pub async fn complete_many<C: ConnectionLike>(
        &self,
        c: &mut C,
        done: &[(JobId, &str, &[u8])],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        let calls: Vec<_> = done
            .iter()
            .map(|(id, t, r)| self.complete_call(*id, t, r))
            .collect();
        let mut p = redis::pipe();
        p.load_script(&self.complete).ignore();
        for inv in &calls {
            p.invoke_script(inv);
        }
        let replies: Vec<Value> = p.query_async(c).await?;
        Ok(replies
            .into_iter()
            .zip(done)
            .map(|(v, (id, _, _))| {
                Reply::parse("complete", v)?
                    .check(*id, "complete")
                    .map(|_| ())
            })
            .collect())
    }

    /// Runs `lua/fail.lua`: retry (SCHEDULED or PENDING) or FAILED.
    ///
    /// # Returns
    /// The job's new status.
    pub async fn fail<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        error: &str,
        retryable: bool,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        self.fail
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(error)
            .arg(u8::from(retryable))
            .run(c, "fail")
            .await?
            .check(id, "fail")?
            .status(0)
    }

    /// Runs `lua/timeout.lua`: retry (SCHEDULED or PENDING) or TIMED_OUT.
    ///
    /// # Returns
    /// The job's new status.
    pub async fn timeout<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
        error: &str,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        self.timeout
            .key(k.job(id))
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .arg(error)
            .run(c, "timeout")
            .await?
            .check(id, "time out")?
            .status(0)
    }

    /// Runs `lua/cancel.lua`: RUNNING -> CANCELED after the executor obeyed a stop.
    pub async fn cancel<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
    ) -> Result<(), Error> {
        let k = &self.keys;
        self.cancel
            .key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .run(c, "cancel")
            .await?
            .check(id, "cancel")?;
        Ok(())
    }

    /// Runs `lua/release.lua`: hands a running job back to the head of its queue without
    /// counting the attempt (graceful executor shutdown).
    ///
    /// # Returns
    /// PENDING, or CANCELED when its stop had been requested.
    pub async fn release<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        token: &str,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        self.release
            .key(k.job(id))
            .key(k.leases())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(token)
            .run(c, "release")
            .await?
            .check(id, "release")?
            .status(0)
    }

    /// Runs `lua/retry.lua`: FAILED, CANCELED or TIMED_OUT -> PENDING, attempts reset.
    pub async fn retry<C: ConnectionLike>(&self, c: &mut C, id: JobId) -> Result<Status, Error> {
        let k = &self.keys;
        self.retry
            .key(k.job(id))
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .run(c, "retry")
            .await?
            .check(id, "retry")?
            .status(0)
    }

    /// Runs `lua/reap.lua` over at most `count` expired leases.
    pub async fn reap<C: ConnectionLike>(
        &self,
        c: &mut C,
        count: usize,
        max_lost: u32,
        presence_ttl: Duration,
    ) -> Result<Reaped, Error> {
        let k = &self.keys;
        let r = self
            .reap
            .key(k.leases())
            .key(k.delayed())
            .key(k.events())
            .key(k.executors())
            .arg(k.prefix())
            .arg(count)
            .arg(max_lost)
            .arg(ms(presence_ttl))
            .run(c, "reap")
            .await?;
        let n = |i| r.int(i).unwrap_or(0) as u64;
        Ok(Reaped {
            requeued: n(0),
            failed: n(1),
            canceled: n(2),
        })
    }

    /// Runs `lua/presence.lua`: `p.worker` is alive for `p.ttl` more (or, leaving, gone),
    /// and the leases of `p.jobs` (id, token) are extended by `lease`. One answer per job,
    /// as [`Scripts::heartbeat`]'s: true when a stop was requested.
    pub async fn presence<C: ConnectionLike>(
        &self,
        c: &mut C,
        p: &crate::presence::Presence<'_>,
        lease: Duration,
    ) -> Result<Vec<Result<bool, Error>>, Error> {
        let k = &self.keys;
        let mut inv = self.presence.key(k.executors());
        inv.key(k.leases())
            .arg(k.prefix())
            .arg(p.worker)
            .arg(p.kind)
            .arg(p.slots)
            .arg(p.running)
            .arg(ms(p.ttl))
            .arg(u8::from(p.leaving))
            .arg(ms(lease));
        for (id, token) in p.jobs {
            inv.arg(id.0).arg(*token);
        }
        let r = inv.run(c, "presence").await?;
        Ok(p.jobs
            .iter()
            .zip(r.rest)
            .map(|((id, _), v)| Ok(Reply::parse("presence", v)?.check(*id, "heartbeat")?.code == 2))
            .collect())
    }

    /// Runs `lua/promote.lua` over at most `count` due delayed jobs.
    ///
    /// # Returns
    /// How many became PENDING.
    pub async fn promote<C: ConnectionLike>(&self, c: &mut C, count: usize) -> Result<u64, Error> {
        let k = &self.keys;
        Ok(self
            .promote
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(count)
            .run(c, "promote")
            .await?
            .int(0)
            .unwrap_or(0) as u64)
    }

    /// Runs `lua/prune.lua`: the oldest `count` entries of every ended-status and owner
    /// index are checked, and expired jobs leave.
    ///
    /// # Returns
    /// How many ids left the indexes.
    pub async fn prune<C: ConnectionLike>(&self, c: &mut C, count: usize) -> Result<u64, Error> {
        let k = &self.keys;
        let r = self
            .prune
            .key(k.index_kinds())
            .key(k.index_owners())
            .arg(k.prefix())
            .arg(count)
            .run(c, "prune")
            .await?;
        Ok(r.int(0).unwrap_or(0).max(0) as u64)
    }

    /// Runs `lua/list.lua`: one page of `filter`'s jobs (ids below `before`, 0 = from the
    /// newest), newest first, and the count of each status under its kind and owner; a walk
    /// looks at no more than `budget` ids.
    pub async fn list<C: ConnectionLike>(
        &self,
        c: &mut C,
        filter: &crate::client::ListFilter,
        before: u64,
        limit: usize,
        budget: usize,
    ) -> Result<Listed, Error> {
        let k = &self.keys;
        let wanted: Vec<&str> = filter.statuses().iter().map(|s| s.as_str()).collect();
        let r = self
            .list
            .key(k.index_kinds())
            .arg(k.prefix())
            .arg(wanted.join(","))
            .arg(filter.executor.as_deref().unwrap_or(""))
            .arg(filter.owner.as_deref().unwrap_or(""))
            .arg(before)
            .arg(limit)
            .arg(budget)
            .run(c, "list")
            .await?;
        let numbers = |i: usize| -> Vec<u64> {
            match r.rest.get(i) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Int(n) => u64::try_from(*n).ok(),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        Ok(Listed {
            counts: numbers(0),
            ids: numbers(1),
            next: r.int(2).filter(|n| *n > 0).map(|n| n as u64),
            exact: r.int(3) != Some(0),
        })
    }

    /// Runs `lua/unhold.lua`: a held job (its files now stored) becomes PENDING, or
    /// SCHEDULED until `run_at`.
    ///
    /// # Errors
    /// NotFound; IllegalTransition when the job is no longer held (stopped meanwhile).
    pub async fn unhold<C: ConnectionLike>(
        &self,
        c: &mut C,
        id: JobId,
        run_at: Option<SystemTime>,
    ) -> Result<Status, Error> {
        let k = &self.keys;
        self.unhold
            .key(k.delayed())
            .key(k.events())
            .arg(k.prefix())
            .arg(id.0)
            .arg(run_at.map_or(0, unix_ms))
            .arg(self.list_cap.max(1))
            .run(c, "unhold")
            .await?
            .check(id, "start")?
            .status(0)
    }

    /// Runs `lua/seq_floor.lua`: the job id counter becomes at least `floor`.
    pub async fn seq_floor<C: ConnectionLike>(&self, c: &mut C, floor: u64) -> Result<u64, Error> {
        Ok(self
            .seq_floor
            .key(self.keys.job_seq())
            .arg(floor)
            .run(c, "seq_floor")
            .await?
            .int(0)
            .unwrap_or(0) as u64)
    }
}

/// What `lua/list.lua` found.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Jobs per status, in [`Status::ALL`] order.
    pub counts: Vec<u64>,
    /// The page's ids, newest first.
    pub ids: Vec<u64>,
    /// The id to continue below, when there may be more.
    pub next: Option<u64>,
    /// The counts are exact (an owner's are over its newest 1 000 jobs).
    pub exact: bool,
}
