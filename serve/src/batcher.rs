//! The inference worker: one dedicated OS thread owns the model and micro-batches concurrent
//! requests into one forward pass (bounded wait), answering each through a oneshot channel.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{
    sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError,
};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::engine::{Engine, ModelInfo, Pred, WindowData};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Micro-batching settings.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most windows in one forward pass.
    pub max_batch: usize,
    /// Longest a job waits for company before the batch runs.
    pub max_wait: Duration,
    /// Jobs that may wait in the queue; beyond that requests get 503.
    pub queue: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 64,
            max_wait: Duration::from_millis(2),
            queue: 256,
        }
    }
}

/// Predictions with the model that computed them (a reload can switch models between a
/// request's parsing and its forward pass).
#[derive(Debug)]
pub struct Answer {
    pub preds: Vec<Pred>,
    pub info: Arc<ModelInfo>,
}

type Reply = oneshot::Sender<Result<Answer, ApiError>>;

enum Msg {
    Job(Job),
    /// A model is waiting in `pending`: switch now if idle.
    Wake,
}

/// A validated engine handed to the worker, and who to tell once it serves.
type Pending = Option<(Box<dyn Engine>, oneshot::Sender<Arc<ModelInfo>>)>;

struct Job {
    windows: Vec<WindowData>,
    /// The feature count the windows were parsed for (checked against the engine at run time).
    n_features: usize,
    reply: Reply,
    enqueued: Instant,
}

/// Handle to the inference worker. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: SyncSender<Msg>,
    pending_engine: Arc<Mutex<Pending>>,
    /// The model the worker runs now (published by the worker when it switches).
    info: Arc<RwLock<Arc<ModelInfo>>>,
    /// Requests currently between "body received" and "answered" (the worker waits for more
    /// company only while more requests are in flight than it has collected).
    inflight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

/// Decrements the in-flight count when a request is done.
pub struct InflightGuard(Arc<AtomicUsize>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Batcher {
    /// Starts the worker thread with `engine`. The thread ends when every `Batcher` clone is gone.
    pub fn spawn(
        engine: Box<dyn Engine>,
        cfg: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Batcher> {
        let (tx, rx) = sync_channel::<Msg>(cfg.queue.max(1));
        let current = Arc::new(engine.info().clone());
        let info = Arc::new(RwLock::new(current.clone()));
        let pending_engine: Arc<Mutex<Pending>> = Arc::new(Mutex::new(None));
        let inflight = Arc::new(AtomicUsize::new(0));
        let w = Worker {
            rx,
            engine,
            current,
            shared_info: info.clone(),
            pending: pending_engine.clone(),
            inflight: inflight.clone(),
            cfg,
            metrics: metrics.clone(),
        };
        std::thread::Builder::new()
            .name("cloudformer-infer".into())
            .spawn(move || w.run())?;
        Ok(Batcher {
            tx,
            pending_engine,
            info,
            inflight,
            metrics,
        })
    }

    /// The model currently serving.
    pub fn info(&self) -> Arc<ModelInfo> {
        match self.info.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Marks a request in flight (call before parsing its body).
    pub fn enter(&self) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.inflight.clone())
    }

    /// Hands a new model to the worker, which switches between two forward passes (requests
    /// already queued run on the new one; their feature count is checked) and only then publishes
    /// its info. The receiver resolves with that info once the new model serves. The caller
    /// validates the engine first.
    pub fn swap(&self, engine: Box<dyn Engine>) -> oneshot::Receiver<Arc<ModelInfo>> {
        let (ack, rx) = oneshot::channel();
        match self.pending_engine.lock() {
            Ok(mut p) => *p = Some((engine, ack)),
            Err(p) => *p.into_inner() = Some((engine, ack)),
        }
        // Wake an idle worker; when the queue is full the worker is busy and switches after
        // its current batch anyway.
        let _ = self.tx.try_send(Msg::Wake);
        rx
    }

    /// Queues windows for prediction and waits for the answer.
    pub async fn predict(
        &self,
        windows: Vec<WindowData>,
        n_features: usize,
    ) -> Result<Answer, ApiError> {
        if windows.is_empty() {
            return Ok(Answer {
                preds: Vec::new(),
                info: self.info(),
            });
        }
        let (reply, rx) = oneshot::channel();
        let job = Job {
            windows,
            n_features,
            reply,
            enqueued: Instant::now(),
        };
        match self.tx.try_send(Msg::Job(job)) {
            Ok(()) => {
                self.metrics.queue_depth.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.metrics.queue_full.fetch_add(1, Ordering::Relaxed);
                return Err(ApiError::unavailable(
                    "inference queue is full; retry shortly",
                ));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ApiError::unavailable("inference worker has stopped"))
            }
        }
        rx.await
            .map_err(|_| ApiError::internal("inference worker dropped the request"))?
    }
}

struct Worker {
    rx: Receiver<Msg>,
    engine: Box<dyn Engine>,
    /// `engine`'s info, shared with the answers it computes.
    current: Arc<ModelInfo>,
    shared_info: Arc<RwLock<Arc<ModelInfo>>>,
    pending: Arc<Mutex<Pending>>,
    inflight: Arc<AtomicUsize>,
    cfg: BatchConfig,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn take_pending(&mut self) {
        let next = match self.pending.lock() {
            Ok(mut p) => p.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some((e, ack)) = next {
            tracing::info!(model_id = %e.info().model_id, "inference worker switched model");
            self.engine = e;
            self.current = Arc::new(self.engine.info().clone());
            match self.shared_info.write() {
                Ok(mut g) => *g = self.current.clone(),
                Err(p) => *p.into_inner() = self.current.clone(),
            }
            let _ = ack.send(self.current.clone());
        }
    }

    /// The next job, or `None` for a wake-up (or nothing within the poll interval).
    fn job(&self, msg: Msg) -> Option<Job> {
        match msg {
            Msg::Job(j) => {
                self.metrics.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Some(j)
            }
            Msg::Wake => None,
        }
    }

    fn run(mut self) {
        loop {
            self.take_pending();
            let first = match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(m) => match self.job(m) {
                    Some(j) => j,
                    None => continue,
                },
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut n = first.windows.len();
            let mut jobs = vec![first];
            let deadline = Instant::now() + self.cfg.max_wait;
            while n < self.cfg.max_batch {
                // Take what is already queued; wait only while more requests are in flight
                // than we have collected (so a lone request never waits).
                let msg = match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {
                        let now = Instant::now();
                        if now >= deadline || self.inflight.load(Ordering::Acquire) <= jobs.len() {
                            break;
                        }
                        match self
                            .rx
                            .recv_timeout((deadline - now).min(Duration::from_micros(200)))
                        {
                            Ok(m) => m,
                            Err(_) => continue,
                        }
                    }
                };
                let Some(job) = self.job(msg) else { continue };
                n += job.windows.len();
                jobs.push(job);
            }
            self.run_batch(jobs);
        }
        tracing::debug!("inference worker stopped");
    }

    fn run_batch(&mut self, jobs: Vec<Job>) {
        let f = self.engine.info().n_features();
        let now = Instant::now();
        let mut ok_jobs = Vec::with_capacity(jobs.len());
        for j in jobs {
            self.metrics
                .queue_wait_seconds
                .observe_duration(now.saturating_duration_since(j.enqueued));
            if j.n_features != f || j.windows.iter().any(|w| w.data.len() != w.t * f) {
                let _ = j.reply.send(Err(ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    format!(
                        "the model changed while the request waited (it was parsed for {} features, the model now has {f}); retry",
                        j.n_features
                    ),
                )));
                continue;
            }
            ok_jobs.push(j);
        }
        if ok_jobs.is_empty() {
            return;
        }
        let refs: Vec<&WindowData> = ok_jobs.iter().flat_map(|j| j.windows.iter()).collect();
        let mut preds: Vec<Pred> = Vec::with_capacity(refs.len());
        let mut failure: Option<String> = None;
        for chunk in refs.chunks(self.cfg.max_batch.max(1)) {
            let t0 = Instant::now();
            let engine = &mut self.engine;
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| engine.predict(chunk)));
            self.metrics.forward_seconds.observe_duration(t0.elapsed());
            self.metrics.batch_windows.observe(chunk.len() as f64);
            match r {
                Ok(Ok(p)) if p.iter().any(|x| !(x.p.is_finite() && x.std.is_finite())) => {
                    let n = p
                        .iter()
                        .filter(|x| !x.p.is_finite() || !x.std.is_finite())
                        .count();
                    failure = Some(format!(
                        "the model answered {n} of {} windows with a non-finite P̂ or std (its \
                         weights may be corrupt; it passed the self-test on a zero window)",
                        chunk.len()
                    ));
                    break;
                }
                Ok(Ok(p)) if p.len() == chunk.len() => preds.extend(p),
                Ok(Ok(p)) => {
                    failure = Some(format!(
                        "model returned {} predictions for {} windows",
                        p.len(),
                        chunk.len()
                    ));
                    break;
                }
                Ok(Err(e)) => {
                    failure = Some(format!("model error: {e}"));
                    break;
                }
                Err(_) => {
                    failure = Some("model panicked during the forward pass".into());
                    break;
                }
            }
        }
        drop(refs);
        if let Some(e) = failure {
            tracing::error!(error = %e, "inference failed");
            for j in ok_jobs {
                let _ = j.reply.send(Err(ApiError::internal(e.clone())));
            }
            return;
        }
        self.metrics
            .windows_predicted
            .fetch_add(preds.len() as u64, Ordering::Relaxed);
        let mut it = preds.into_iter();
        for j in ok_jobs {
            let mine: Vec<Pred> = it.by_ref().take(j.windows.len()).collect();
            let _ = j.reply.send(Ok(Answer {
                preds: mine,
                info: self.current.clone(),
            }));
        }
    }
}
