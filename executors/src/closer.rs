//! Batched closing writes: the runtime's job tasks hand their `complete` to one closer task
//! per executor process, which writes whatever has queued up meanwhile in one pipeline of
//! `lua/complete.lua` calls (and, with `min_replicas_ack`, one `WAIT` for the whole batch),
//! then answers each task with its own outcome. Nothing waits to fill a batch: a lone job
//! is written at once; under load, completions that arrive while a batch is in flight form
//! the next one, as the core's drain (`sluice bench`) does. A batch or call that Redis
//! itself refuses is written again one job at a time, so each job gets its own error.

use broker::{Broker, Error, JobId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// Most completions per pipeline.
const MAX_BATCH: usize = 128;

/// One job's completion waiting for its batch.
struct Done {
    id: JobId,
    token: String,
    result: Vec<u8>,
    reply: oneshot::Sender<Result<(), Error>>,
}

/// A handle to the closer task; cheap to clone into job tasks.
#[derive(Clone)]
pub struct Closer {
    tx: mpsc::UnboundedSender<Done>,
}

impl Closer {
    /// Starts the closer task over `b`; it ends when every handle is dropped.
    pub fn start(b: Broker) -> (Closer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Closer { tx }, tokio::spawn(close_forever(b, rx)))
    }

    /// Completes attempt `token` of job `id` with `result`, in the next batch.
    ///
    /// # Errors
    /// As `Broker::complete`: the job's own refusal (stale lease, ...) or Redis' errors.
    pub async fn complete(&self, id: JobId, token: &str, result: &Value) -> Result<(), Error> {
        let (reply, answer) = oneshot::channel();
        let done = Done {
            id,
            token: token.to_string(),
            result: broker::job::encode(result)?,
            reply,
        };
        let gone = || Error::Unavailable("the executor is shutting down".into());
        self.tx.send(done).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn close_forever(b: Broker, mut rx: mpsc::UnboundedReceiver<Done>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let items: Vec<(JobId, &str, &[u8])> = batch
            .iter()
            .map(|d| (d.id, d.token.as_str(), d.result.as_slice()))
            .collect();
        let outcomes: Vec<Option<Result<(), Error>>> = match b.complete_many(&items).await {
            Ok(outcomes) => outcomes.into_iter().map(Some).collect(),
            Err(_) => batch.iter().map(|_| None).collect(),
        };
        for (d, outcome) in batch.drain(..).zip(outcomes) {
            let outcome = match outcome {
                // The script's own answer: done, or refused (stale lease, ...).
                Some(o) if !matches!(o, Err(Error::Redis(_) | Error::Protocol { .. })) => o,
                // Redis' error, for the batch or this call (a full memory, a SCRIPT FLUSH
                // between the pipeline's load and this call): this job alone, with the
                // single call's own handling (NOSCRIPT reloads), and its own error.
                _ => b.complete_encoded(d.id, &d.token, &d.result).await,
            };
            let _ = d.reply.send(outcome);
        }
    }
}
