//! Redis connections: a bb8 pool of self-healing connections for ordinary commands and
//! scripts, and dedicated connections without a response timeout for blocking reads.
//!
//! Why not bb8-redis' manager: it checks every connection out with a PING (bb8's
//! `test_on_check_out`), a second round trip on every call, and its `has_broken` is always
//! false, so turning the PING off would keep a dead connection in the pool for good. The
//! pool here holds redis-rs `ConnectionManager`s instead: each reconnects by itself after
//! Redis restarts, so the check-out test is not needed. Measured: pickup latency and
//! single-job submit rates (README, Benchmark).
//!
//! A `ConnectionManager` learns that Redis went away only when a command fails on it: a
//! connection idle while Redis restarted, or one whose reconnect was tried (and failed)
//! while Redis was down, fails the next command sent on it, even when Redis is back. Behind
//! an outage every pooled connection would fail its first call after Redis returns (found
//! by the chaos suite, `tests/chaos/redis.rs`). [`Healing`] wraps each manager: after a
//! connection error, or when idle for [`VALIDATE_AFTER_IDLE`], it first PINGs (twice: the
//! first PING may only discover the dead connection and start the reconnect) and sends the
//! command only once a PING went through. PING is idempotent, so nothing is ever sent
//! twice; a connection in steady use pays nothing.
//!
//! With a Sentinel `redis_url` ([`crate::sentinel`]) a connection is made to whichever node
//! the sentinels name primary, and a `Healing` connection that lost its node (or finds it
//! demoted: READONLY) asks the sentinels again before its next command instead of
//! reconnecting to the old address: the pool follows a failover by itself. Scripts are
//! loaded on the new primary as they are first called there (NOSCRIPT, `scripts/mod.rs`).
//!
//! redis-rs gives async connections a 500 ms response timeout by default, and it applies to
//! BLPOP and XREAD BLOCK too; a blocking loop therefore gets its own connection from
//! [`blocking_connection`] instead of a pooled one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::sentinel::SentinelClient;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisError, RedisFuture, Value};

use crate::config::Config;
use crate::error::Error;

/// The pool every request and script call borrows from.
pub type Pool = bb8::Pool<Manager>;

/// A pooled connection.
pub type Conn<'a> = bb8::PooledConnection<'a, Manager>;

/// Where connections go: one address, or the primary that a set of sentinels names.
#[derive(Clone)]
pub enum Target {
    /// A `redis://` or `unix://` URL.
    Direct(Client),
    /// A `redis+sentinel://` URL: asked anew for every connection.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Direct(c) => write!(f, "Direct({:?})", c.get_connection_info().addr()),
            Target::Sentinel(_) => f.write_str("Sentinel"),
        }
    }
}

impl Target {
    /// The target of `redis_url`.
    ///
    /// # Errors
    /// [`Error::Config`] when the URL is malformed.
    pub fn open(redis_url: &str) -> Result<Target, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::Config(format!("redis_url: {e}"));
        match crate::sentinel::parse(redis_url) {
            Some(url) => {
                let client = url.map_err(|e| bad(&e))?.client().map_err(|e| bad(&e))?;
                Ok(Target::Sentinel(Arc::new(tokio::sync::Mutex::new(client))))
            }
            None => Ok(Target::Direct(
                Client::open(redis_url).map_err(|e| bad(&e))?,
            )),
        }
    }

    /// A client for the node to talk to now. The sentinels' answer is checked (the node
    /// must call itself primary); while none does (a failover under way), the error is a
    /// refused connection, so callers treat it as Redis being away and retry.
    async fn client(&self) -> Result<Client, RedisError> {
        match self {
            Target::Direct(c) => Ok(c.clone()),
            Target::Sentinel(s) => s.lock().await.async_get_client().await.map_err(|e| {
                if lost_connection(&e) {
                    e
                } else {
                    RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionRefused,
                        format!("no primary from the sentinels: {e}"),
                    ))
                }
            }),
        }
    }
}

/// Makes the pool's connections: redis-rs `ConnectionManager`s that reconnect by themselves.
#[derive(Debug, Clone)]
pub struct Manager {
    target: Target,
    config: ConnectionManagerConfig,
}

impl Manager {
    async fn manager(&self) -> Result<ConnectionManager, RedisError> {
        ConnectionManager::new_with_config(self.target.client().await?, self.config.clone()).await
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Healing;
    type Error = RedisError;

    async fn connect(&self) -> Result<Healing, RedisError> {
        let inner = self.manager().await?;
        let sentinel = matches!(self.target, Target::Sentinel(_)).then(|| self.clone());
        Ok(Healing::new(inner, sentinel))
    }

    async fn is_valid(&self, conn: &mut Healing) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(|_| ())
    }

    fn has_broken(&self, _: &mut Healing) -> bool {
        false // it reconnects on its own after an error
    }
}

/// A connection idle this long is checked with a PING before its next command: Redis may
/// have restarted meanwhile. Busy connections (and executors' claim loops, which claim at
/// least once a second) stay under it.
pub const VALIDATE_AFTER_IDLE: Duration = Duration::from_secs(2);

/// A pooled connection: a self-reconnecting `ConnectionManager` that makes sure it is
/// connected (PING) before it sends a command after a connection error or a long idle
/// spell (see the module doc).
#[derive(Clone)]
pub struct Healing {
    inner: ConnectionManager,
    /// With Sentinel: how to find the primary again after losing a connection.
    sentinel: Option<Manager>,
    /// The last call failed for want of a connection: the manager may hold a dead one.
    suspect: bool,
    last_used: Instant,
}

/// True for errors after which a `ConnectionManager` reconnects.
fn lost_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// True for errors after which a connection should be made anew: lost, or (with Sentinel)
/// to a node that is no longer the primary.
fn lost_node(e: &RedisError) -> bool {
    lost_connection(e) || e.code() == Some("READONLY")
}

impl Healing {
    fn new(inner: ConnectionManager, sentinel: Option<Manager>) -> Self {
        Self {
            inner,
            sentinel,
            suspect: false,
            last_used: Instant::now(),
        }
    }

    /// PINGs (at most twice) when the connection is suspect or was idle long, so that a
    /// dead connection is found and replaced before a real command is sent on it.
    async fn heal(&mut self) -> Result<(), RedisError> {
        if !self.suspect && self.last_used.elapsed() < VALIDATE_AFTER_IDLE {
            return Ok(());
        }
        if let Some(sentinel) = &self.sentinel {
            if !self.suspect {
                match redis::cmd("PING")
                    .query_async::<Value>(&mut self.inner)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) if !lost_connection(&e) => return Err(e),
                    Err(_) => {}
                }
            }
            // Lost its node: ask the sentinels where the primary is now.
            self.inner = sentinel.manager().await?;
            self.suspect = false;
            return Ok(());
        }
        let mut last = Ok(());
        for _ in 0..2 {
            last = redis::cmd("PING")
                .query_async::<Value>(&mut self.inner)
                .await
                .map(|_| ());
            match &last {
                Ok(()) => {
                    self.suspect = false;
                    return Ok(());
                }
                Err(e) if lost_connection(e) => continue,
                Err(_) => break,
            }
        }
        last
    }

    /// Remembers whether the connection is suspect after a call.
    fn note<T>(&mut self, r: &Result<T, RedisError>) {
        self.last_used = Instant::now();
        self.suspect = matches!(r, Err(e) if lost_node(e));
    }
}

impl ConnectionLike for Healing {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let r = match self.heal().await {
                Ok(()) => self.inner.req_packed_command(cmd).await,
                Err(e) => Err(e),
            };
            self.note(&r);
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let r = match self.heal().await {
                Ok(()) => {
                    self.inner
                        .req_packed_commands(pipeline, offset, count)
                        .await
                }
                Err(e) => Err(e),
            };
            self.note(&r);
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

/// Builds the pool lazily: no connection is made until one is needed, so a process starts
/// (and answers "unavailable") while Redis is still down, and recovers when it returns.
///
/// # Errors
/// [`Error::Config`] when the URL is malformed.
pub fn build(config: &Config) -> Result<Pool, Error> {
    let manager = Manager {
        target: Target::open(&config.redis_url)?,
        config: ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            // Scripts over big batches and AOF `always` take longer than the 500 ms default.
            .set_response_timeout(Some(config.redis_timeout.max(Duration::from_secs(5))))
            // Fail fast while Redis is away: callers answer 503 and retry later; one
            // connect attempt per reconnect (Healing tries a second PING itself).
            .set_number_of_retries(0),
    };
    Ok(bb8::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(None)
        .test_on_check_out(false)
        .connection_timeout(config.redis_timeout)
        .build_unchecked(manager))
}

/// A connection for blocking reads (BLPOP, XREAD BLOCK): no response timeout.
///
/// # Errors
/// [`Error::Redis`] when Redis cannot be reached.
pub async fn blocking_connection(config: &Config) -> Result<MultiplexedConnection, Error> {
    let client = Target::open(&config.redis_url)?.client().await?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}
