//! Test harness: a real redis-server per test, brokers over it, and the `sluice` binary.

pub mod redis;

use broker::{Broker, Config, Job, JobId};

pub use self::redis::TestRedis;

/// A broker over `redis` with short, test-friendly durations and the given tweaks.
pub fn broker(redis: &TestRedis, tweak: impl FnOnce(&mut Config)) -> Broker {
    let mut config = Config {
        redis_url: redis.url.clone(),
        ..Config::default()
    };
    tweak(&mut config);
    Broker::new(config).expect("broker over the test redis")
}

/// Reads a job, panicking with a clear message if it is gone.
pub async fn job(b: &Broker, id: JobId) -> Job {
    match b.get(id).await {
        Ok(j) => j,
        Err(e) => panic!("job {id}: {e}"),
    }
}

/// `assert_eq!` that prints `HGETALL job_N` when it fails.
#[macro_export]
macro_rules! eq_job {
    ($redis:expr, $id:expr, $left:expr, $right:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            panic!(
                "{} != {}: {:?} vs {:?}\nHGETALL job_{}:\n{}",
                stringify!($left),
                stringify!($right),
                l,
                r,
                $id,
                $redis.cli(&["HGETALL", &format!("job_{}", $id)])
            );
        }
    }};
}
