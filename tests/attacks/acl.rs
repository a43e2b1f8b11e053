//! Redis' own boundary (broker::acl): every process class connects as its own ACL user. Even
//! holding the executor's credentials (or the API's), nobody can mint an API key, and
//! nothing connects without a password.
use redis::AsyncCommands;

use crate::harness::TestRedis;

async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects")
}

fn refused<T: std::fmt::Debug>(r: redis::RedisResult<T>) -> bool {
    matches!(&r, Err(e) if e.to_string().contains("NOPERM") || e.to_string().contains("permission"))
}

// See: issue 15, finding 1 (the forged admin key).
#[tokio::test]
async fn executor_and_api_credentials_cannot_mint_an_api_key() {
    let redis = TestRedis::start();
    let forged = "apikey:0000000000000000000000000000000000000000000000000000000000000000";
    for class in ["exec", "api"] {
        let mut c = conn(&redis.url_for(class)).await;
        let direct: redis::RedisResult<i64> = c
            .hset_multiple(forged, &[("owner", "mallory"), ("role", "admin")])
            .await;
        assert!(refused(direct), "{class} wrote an API key directly");
        // A script runs with its caller's rights, whatever keys it declares.
        let scripted: redis::RedisResult<i64> = redis::Script::new(
            "return redis.call('HSET', ARGV[1] .. '0000000000000000000000000000000000000000000000000000000000000000', 'role', 'admin')",
        )
        .arg("apikey:")
        .invoke_async(&mut c)
        .await;
        assert!(
            scripted.is_err(),
            "{class} wrote an API key through a script"
        );
        let config: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("SET")
            .arg("dir")
            .arg("/tmp")
            .query_async(&mut c)
            .await;
        assert!(config.is_err(), "{class} may reconfigure Redis");
        let flush: redis::RedisResult<String> = redis::cmd("FLUSHALL").query_async(&mut c).await;
        assert!(flush.is_err(), "{class} may flush Redis");
    }
    let mut exec = conn(&redis.url_for("exec")).await;
    assert!(
        refused(exec.hgetall::<_, Vec<String>>("apikey:abc").await),
        "executors do not even read keys"
    );
    // The job data stays usable for them.
    let _: i64 = exec
        .incr("job_seq", 1)
        .await
        .expect("executors write job data");
    let mut api = conn(&redis.url_for("api")).await;
    let _: Vec<String> = api.hgetall("apikey:abc").await.expect("the API reads keys");
    assert_eq!(redis.cli(&["EXISTS", forged]).trim(), "0");
    // Nothing without a password.
    let anonymous = redis::Client::open(format!("unix://{}", redis.socket.display()))
        .expect("url")
        .get_multiplexed_async_connection()
        .await;
    let denied = match anonymous {
        Err(_) => true,
        Ok(mut c) => redis::cmd("GET")
            .arg("job_seq")
            .query_async::<Option<String>>(&mut c)
            .await
            .is_err(),
    };
    assert!(denied, "an anonymous client read data");
}
