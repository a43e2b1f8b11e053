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
//! redis-rs gives async connections a 500 ms response timeout by default, and it applies to
//! BLPOP and XREAD BLOCK too; a blocking loop therefore gets its own connection from
//! [`blocking_connection`] instead of a pooled one.

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, RedisError};

use crate::config::Config;
use crate::error::Error;

/// The pool every request and script call borrows from.
pub type Pool = bb8::Pool<Manager>;

/// A pooled connection.
pub type Conn<'a> = bb8::PooledConnection<'a, Manager>;

/// Makes the pool's connections: redis-rs `ConnectionManager`s that reconnect by themselves.
#[derive(Debug, Clone)]
pub struct Manager {
    client: Client,
    config: ConnectionManagerConfig,
}

impl bb8::ManageConnection for Manager {
    type Connection = ConnectionManager;
    type Error = RedisError;

    async fn connect(&self) -> Result<ConnectionManager, RedisError> {
        ConnectionManager::new_with_config(self.client.clone(), self.config.clone()).await
    }

    async fn is_valid(&self, conn: &mut ConnectionManager) -> Result<(), RedisError> {
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map(|_| ())
    }

    fn has_broken(&self, _: &mut ConnectionManager) -> bool {
        false // it reconnects on its own after an error
    }
}

/// Builds the pool lazily: no connection is made until one is needed, so a process starts
/// (and answers "unavailable") while Redis is still down, and recovers when it returns.
///
/// # Errors
/// [`Error::Config`] when the URL is malformed.
pub fn build(config: &Config) -> Result<Pool, Error> {
    let client = Client::open(config.redis_url.as_str())
        .map_err(|e| Error::Config(format!("redis_url: {e}")))?;
    let manager = Manager {
        client,
        config: ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.redis_timeout))
            // Scripts over big batches and AOF `always` take longer than the 500 ms default.
            .set_response_timeout(Some(
                config.redis_timeout.max(std::time::Duration::from_secs(5)),
            ))
            // Fail fast while Redis is away: callers answer 503 and retry later.
            .set_number_of_retries(1),
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
    let client = Client::open(config.redis_url.as_str())?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}
