//! Where a camera's frames are recognised: on the recognition thread itself (one recognizer,
//! `[models] parallel_frames = 1`), or on worker threads with a recognizer each, so that a
//! camera recognising every frame uses more than one core for its plate stages. Frames go to
//! the workers in turn and their results come back in the frames' order, so the tracker sees
//! the same sequence either way, a few frames later.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::Scope;
use std::time::{Duration, Instant};

use anpr_ingest::Frame;
use anpr_types::KnownPlate;
use anpr_vision::{FrameResult, Recognizer, VisionError};
use anyhow::{Result, anyhow};

/// A frame to recognise, with what was decided for it before.
pub(super) struct Job {
    pub frame: Frame,
    /// Whether the vehicle detector runs on this frame.
    pub want_vehicles: bool,
    /// Plates the tracker has read alike before, where it expects them in this frame.
    pub known: Vec<KnownPlate>,
}

/// A recognised frame: its job back, the result and how long the recognizer took.
pub(super) struct Done {
    pub job: Job,
    pub result: Result<FrameResult, VisionError>,
    pub took: Duration,
}

fn recognise(rec: &mut Recognizer, job: Job) -> Done {
    let t = Instant::now();
    let result = rec.process_known(&job.frame.image, job.want_vehicles, &job.known);
    Done {
        job,
        result,
        took: t.elapsed(),
    }
}

/// A worker thread's ends of its channels.
pub(super) struct Worker {
    jobs: Sender<Job>,
    done: Receiver<Done>,
}

/// The recognizers of one camera.
pub(super) enum Pool {
    /// One recognizer, run on the calling thread.
    Inline(Box<Recognizer>),
    /// One worker thread per recognizer; `in_flight` names the worker of each frame handed
    /// over and not yet returned, oldest first.
    Workers {
        workers: Vec<Worker>,
        in_flight: VecDeque<usize>,
        next: usize,
    },
}

impl Pool {
    /// A pool of `recognizers`: inline for one, else a worker thread each in `scope` (they end
    /// when the pool is dropped).
    pub(super) fn start<'scope>(
        scope: &'scope Scope<'scope, '_>,
        camera: &str,
        mut recognizers: Vec<Recognizer>,
    ) -> Result<Self> {
        if recognizers.len() <= 1 {
            let rec = recognizers
                .pop()
                .ok_or_else(|| anyhow!("no recognizer to recognise frames with"))?;
            return Ok(Self::Inline(Box::new(rec)));
        }
        let mut workers = Vec::with_capacity(recognizers.len());
        for (i, mut rec) in recognizers.into_iter().enumerate() {
            let (jobs, job_rx) = channel::<Job>();
            let (done_tx, done) = channel::<Done>();
            std::thread::Builder::new()
                .name(format!("recognise-{camera}-{i}"))
                .spawn_scoped(scope, move || {
                    for job in job_rx {
                        if done_tx.send(recognise(&mut rec, job)).is_err() {
                            break;
                        }
                    }
                })?;
            workers.push(Worker { jobs, done });
        }
        Ok(Self::Workers {
            workers,
            in_flight: VecDeque::new(),
            next: 0,
        })
    }

    /// Hands `job` over and returns the frame now due, if any: inline, `job` itself; with
    /// workers, the oldest frame in flight once every worker has one and another is queued.
    pub(super) fn submit(&mut self, job: Job) -> Result<Option<Done>> {
        match self {
            Self::Inline(rec) => Ok(Some(recognise(rec, job))),
            Self::Workers {
                workers,
                in_flight,
                next,
            } => {
                workers[*next].jobs.send(job).map_err(|_| stopped())?;
                in_flight.push_back(*next);
                *next = (*next + 1) % workers.len();
                if in_flight.len() > workers.len() {
                    return oldest(workers, in_flight).map(Some);
                }
                Ok(None)
            }
        }
    }

    /// Every frame still in flight, oldest first (at the end of the stream).
    pub(super) fn drain(&mut self) -> Result<Vec<Done>> {
        let mut out = Vec::new();
        if let Self::Workers {
            workers, in_flight, ..
        } = self
        {
            while !in_flight.is_empty() {
                out.push(oldest(workers, in_flight)?);
            }
        }
        Ok(out)
    }
}

fn oldest(workers: &[Worker], in_flight: &mut VecDeque<usize>) -> Result<Done> {
    let w = in_flight.pop_front().ok_or_else(stopped)?;
    workers[w].done.recv().map_err(|_| stopped())
}

fn stopped() -> anyhow::Error {
    anyhow!("a recognition worker thread stopped (see the error logged before)")
}
