//! `sluice bench-executors`: jobs/s through the runtime with an in-process no-op executor,
//! jobs/s through the command executor running `true`, and pickup latency of an idle
//! executor (submit-call start to the job's start in the executor), on a private
//! redis-server with AOF everysec (see `broker::bench`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::scripts::{p50_p99, rate, start_redis, start_redis_with, wait_ready};
use broker::{Broker, Config, Error};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

use crate::command::{CommandConfig, CommandExecutor};
use crate::runtime::{Executor, JobContext, JobError, JobFuture, JobInput, Options};

/// Arguments of `sluice bench-executors`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// No-op jobs through the in-process executor.
    #[arg(long, default_value_t = 20_000)]
    pub jobs: usize,
    /// `true` jobs through the command executor.
    #[arg(long, default_value_t = 3_000)]
    pub commands: usize,
    /// Pickup-latency samples.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Jobs run at once per executor.
    #[arg(long, default_value_t = 10)]
    pub exec_size: usize,
    /// Jobs claimed per round.
    #[arg(long, default_value_t = 10)]
    pub pick_size: usize,
    /// Port of the private redis-server.
    #[arg(long, default_value_t = 6394)]
    pub port: u16,
    /// Recovery rounds: each `kill -9`s a `sluice-command` process running `--held` jobs
    /// and times how long each job waits to run again on an in-process executor (0: skip).
    #[arg(long, default_value_t = 10)]
    pub kills: usize,
    /// Jobs the killed executor holds in each recovery round.
    #[arg(long, default_value_t = 20)]
    pub held: usize,
    /// Also measure what `min_replicas_ack = 1` costs: a replica of the private Redis on
    /// the next port, then submits and the no-op drain with the setting 0 and 1.
    #[arg(long)]
    pub ack: bool,
}

/// Holds each job a little, as real work would, so recovered jobs overlap.
struct Hold;

impl Executor for Hold {
    fn run(&self, _job: JobInput, _ctx: JobContext) -> JobFuture {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok::<Value, JobError>(Value::Null)
        })
    }
}

/// Unix ms of an RFC 3339 job field.
fn field_ms(j: &broker::Job, name: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(j.field(name)?).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64)
}

/// `--kills` rounds of: a `sluice-command` process (next to this binary) claims `--held`
/// jobs that sleep 10 s; once all run, it is killed with SIGKILL while an in-process
/// executor of the same kind waits with free slots; each job's wait is its new `started`
/// minus the kill time. Returns (p50, p99, max) in ms over all jobs of all rounds.
async fn recovery(b: &Broker, args: &Args) -> Result<(f64, f64, f64), Error> {
    let actions = std::env::temp_dir().join(format!("sluice-recovery-{}.toml", std::process::id()));
    std::fs::write(
        &actions,
        "[actions.sleep]\nargv = [\"sleep\", \"10\"]\nparams = \"none\"\n",
    )
    .map_err(|e| Error::Invalid(format!("actions file: {e}")))?;
    let exe = std::env::current_exe()
        .map_err(|e| Error::Invalid(format!("this binary: {e}")))?
        .with_file_name("sluice-command");
    let mut waits = Vec::new();
    for round in 0..args.kills {
        let kind = format!("recover{round}");
        let mut victim = std::process::Command::new(&exe)
            .args(["--config", &actions.display().to_string(), "--kind", &kind])
            .env("SLUICE_REDIS_URL", &b.config().redis_url)
            .env("SLUICE_EXEC_SIZE", args.held.to_string())
            .env("SLUICE_PICK_SIZE", args.held.to_string())
            .env("SLUICE_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| Error::Invalid(format!("{}: {e}", exe.display())))?;
        let mut ids = Vec::new();
        for _ in 0..args.held {
            let (id, _) = b
                .submit(&b.new_job(&kind, json!({"action": "sleep"})))
                .await?;
            ids.push(id);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut running = 0;
            for id in &ids {
                running += usize::from(b.get(*id).await?.status == broker::Status::Running);
            }
            if running == ids.len() {
                break;
            }
            if Instant::now() > deadline {
                let _ = victim.kill();
                return Err(Error::Invalid("the victim never ran its jobs".into()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut opts = Options::new(b.config(), &kind);
        opts.exec_size = args.held;
        opts.pick_size = args.held;
        let (stop, rx) = watch::channel(false);
        let survivor = tokio::spawn(crate::runtime::run(b.clone(), Arc::new(Hold), opts, rx));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let killed = broker::scripts::unix_ms(std::time::SystemTime::now());
        let _ = victim.kill();
        let _ = victim.wait();
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in &ids {
            loop {
                let j = b.get(*id).await?;
                match field_ms(&j, "started") {
                    Some(s) if s >= killed => {
                        waits.push((s - killed) as f64);
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        return Err(Error::Invalid(format!("job {id} never ran again")))
                    }
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }
        let _ = stop.send(true);
        let _ = survivor.await;
    }
    let _ = std::fs::remove_file(&actions);
    let max = waits.iter().copied().fold(0.0, f64::max);
    let (p50, p99) = p50_p99(waits);
    Ok((p50, p99, max))
}

/// Completes every job at once; optionally reports when each started.
struct Noop(Option<mpsc::UnboundedSender<Instant>>);

impl Executor for Noop {
    fn run(&self, _job: JobInput, _ctx: JobContext) -> JobFuture {
        if let Some(tx) = &self.0 {
            let _ = tx.send(Instant::now());
        }
        Box::pin(async { Ok::<Value, JobError>(Value::Null) })
    }
}

async fn through(
    b: &Broker,
    ex: Arc<dyn Executor>,
    args: &Args,
    kind: &str,
    jobs: Vec<Value>,
) -> Result<f64, Error> {
    let n = jobs.len();
    let requests: Vec<_> = jobs.into_iter().map(|p| b.new_job(kind, p)).collect();
    let mut conn = b.conn().await?;
    for chunk in requests.chunks(500) {
        for made in b.scripts().submit_many(&mut *conn, chunk).await? {
            made?;
        }
    }
    let stats = b.keys().stats();
    let mut opts = Options::new(b.config(), kind);
    opts.exec_size = args.exec_size;
    opts.pick_size = args.pick_size;
    let (tx, rx) = watch::channel(false);
    let t0 = Instant::now();
    let task = tokio::spawn(crate::runtime::run(b.clone(), ex, opts, rx));
    loop {
        let done: Option<u64> = redis::cmd("HGET")
            .arg(&stats)
            .arg(format!("completed:{kind}"))
            .query_async(&mut *conn)
            .await?;
        if done.unwrap_or(0) as usize >= n {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err(Error::Invalid(format!(
                "{kind}: only {done:?} of {n} done in 300 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let t = t0.elapsed();
    let _ = tx.send(true);
    let _ = task.await;
    Ok(rate(n, t))
}

async fn pickup(b: &Broker, args: &Args) -> Result<(f64, f64), Error> {
    let (tx, mut started) = mpsc::unbounded_channel();
    let (stop, rx) = watch::channel(false);
    let opts = Options::new(b.config(), "pickup");
    let task = tokio::spawn(crate::runtime::run(
        b.clone(),
        Arc::new(Noop(Some(tx))),
        opts,
        rx,
    ));
    let mut lat = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        tokio::time::sleep(Duration::from_millis(5)).await; // the executor goes idle (BLPOP)
        let t0 = Instant::now();
        b.submit(&b.new_job("pickup", json!(i))).await?;
        let Some(at) = started.recv().await else {
            break;
        };
        lat.push(at.duration_since(t0).as_secs_f64() * 1000.0);
    }
    let _ = stop.send(true);
    let _ = task.await;
    Ok(p50_p99(lat))
}

/// Single submits (`Broker::submit`, one call each, so each waits for its replica ack
/// when asked) from `concurrency` tasks; jobs/s.
async fn submits(b: &Broker, n: usize, concurrency: usize) -> Result<f64, Error> {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..n / concurrency {
                b.submit(&b.new_job("acked", json!(i))).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| Error::Invalid(format!("submit task: {e}")))??;
    }
    Ok(rate(n / concurrency * concurrency, t0.elapsed()))
}

/// What `min_replicas_ack = 1` costs against a replica on the next port: submits (one
/// task, 16 tasks) and the no-op drain, each with the setting 0 and then 1.
async fn ack_cost(b: &Broker, args: &Args) -> Result<(), Error> {
    let port = args.port.to_string();
    let _replica = start_redis_with("aof", args.port + 1, &["--replicaof", "127.0.0.1", &port])?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if b.replicas_online().await? >= 1 {
            break;
        }
        if Instant::now() > deadline {
            return Err(Error::Invalid("the replica never came online".into()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = Broker::new(Config {
        min_replicas_ack: 1,
        ..b.config().clone()
    })?;
    let n = (args.jobs / 4).max(1000);
    let mut rows = Vec::new();
    for (ack, broker) in [(0, b), (1, &acked)] {
        let one = submits(broker, n / 4, 1).await?;
        let many = submits(broker, n, 16).await?;
        let drain = through(
            broker,
            Arc::new(Noop(None)),
            args,
            &format!("noop-ack{ack}"),
            (0..n).map(|i| json!(i)).collect(),
        )
        .await?;
        rows.push((one, many, drain));
    }
    for (i, what) in [
        "submits, one at a time",
        "submits, 16 at once",
        "no-op drain through the runtime",
    ]
    .iter()
    .enumerate()
    {
        let get = |r: &(f64, f64, f64)| [r.0, r.1, r.2][i];
        let (off, on) = (get(&rows[0]), get(&rows[1]));
        println!(
            "  {:<58} {off:>10.0} {on:>10.0}  x{:.2}",
            format!("{what}, ack 0 / 1 (jobs/s)"),
            on / off
        );
    }
    Ok(())
}

/// Runs the three measurements and prints them.
///
/// # Errors
/// When Redis cannot be started, or jobs do not finish.
pub async fn run(config: Config, args: Args) -> Result<(), Error> {
    let _redis = start_redis("aof", args.port)?;
    let b = Broker::new(Config {
        redis_url: format!("redis://127.0.0.1:{}", args.port),
        ..config
    })?;
    wait_ready(&b).await?;
    println!(
        "sluice bench-executors: redis AOF everysec, exec_size {}, pick_size {}",
        args.exec_size, args.pick_size
    );
    let noop = through(
        &b,
        Arc::new(Noop(None)),
        &args,
        "noop",
        (0..args.jobs).map(|i| json!(i)).collect(),
    )
    .await?;
    println!(
        "  {:<58} {noop:>10.0}",
        "no-op jobs through the runtime, one executor (jobs/s)"
    );
    let actions = CommandConfig::parse("[actions.true]\nargv = [\"true\"]\nparams = \"none\"\n")
        .map_err(Error::Invalid)?;
    let cmds = (0..args.commands)
        .map(|i| json!({"action": "true", "i": i}))
        .collect();
    let cmd = through(
        &b,
        Arc::new(CommandExecutor::new(actions)),
        &args,
        "command",
        cmds,
    )
    .await?;
    println!(
        "  {:<58} {cmd:>10.0}",
        "`true` through the command executor, one executor (jobs/s)"
    );
    let (p50, p99) = pickup(&b, &args).await?;
    println!("  {:<58} {p50:>10.2}", "pickup p50, idle executor (ms)");
    println!("  {:<58} {p99:>10.2}", "pickup p99, idle executor (ms)");
    if args.kills > 0 {
        let (p50, p99, max) = recovery(&b, &args).await?;
        let what = format!("{} jobs x {} kill -9", args.held, args.kills);
        println!(
            "  {:<58} {p50:>10.0}",
            format!("re-run after {what}, p50 (ms)")
        );
        println!("  {:<58} {p99:>10.0}", "re-run after kill -9, p99 (ms)");
        println!("  {:<58} {max:>10.0}", "re-run after kill -9, max (ms)");
    }
    if args.ack {
        ack_cost(&b, &args).await?;
    }
    Ok(())
}
