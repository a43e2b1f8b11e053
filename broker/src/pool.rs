//! Redis connections: a bb8 pool of multiplexed connections for ordinary commands and
//! scripts, and dedicated connections without a response timeout for blocking reads.
//!
//! redis-rs gives async connections a 500 ms response timeout by default, and it applies to
//! BLPOP and XREAD BLOCK too; a blocking loop therefore gets its own connection from
//! [`blocking_connection`] instead of a pooled one.

use bb8_redis::RedisConnectionManager;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::config::Config;
use crate::error::Error;

/// The pool every request and script call borrows from.
pub type Pool = bb8::Pool<RedisConnectionManager>;

/// Builds the pool lazily: no connection is made until one is needed, so a process starts
/// (and answers 503) while Redis is still down, and recovers when it returns.
///
/// # Errors
/// [`Error::Config`] when the URL is malformed.
pub fn build(config: &Config) -> Result<Pool, Error> {
    let manager = RedisConnectionManager::new(config.redis_url.as_str())
        .map_err(|e| Error::Config(format!("redis_url: {e}")))?;
    Ok(bb8::Pool::builder()
        .max_size(config.pool_size)
        .min_idle(None)
        .connection_timeout(config.redis_timeout)
        .build_unchecked(manager))
}

/// A connection for blocking reads (BLPOP, XREAD BLOCK): no response timeout.
///
/// # Errors
/// [`Error::Redis`] when Redis cannot be reached.
pub async fn blocking_connection(config: &Config) -> Result<MultiplexedConnection, Error> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(None);
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}
