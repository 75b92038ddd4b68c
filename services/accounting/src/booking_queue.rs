//! On-demand interest bookings, batched as a payout run's chunk is: requests that arrive while a
//! booking transaction is in flight wait for it and then go together in the next one (at most
//! [`MAX_BATCH`], each account once), as TigerBeetle batches what arrives while it commits. The
//! wait adapts to load by itself: with nothing in flight a request goes at once, alone (no added
//! wait at one client at a time); under load it waits at most one transaction's time.
//!
//! Each request is decided alone under its own row lock (`bookings::book_each`, the chunk path):
//! a replay, a refusal or a stale basis answers that request only. A row another transaction holds
//! is not waited for inside the batch: that request is booked alone afterwards
//! (`book_interest_alone`, which waits for the row within the lock budget), and so is a second
//! request for an account already in the batch, and every request of a batch whose one attempt
//! failed as a whole (a fence held past the lock timeout, a deadlock): no request fails because of
//! another. A request whose caller has gone before it is taken is not booked.

use std::collections::HashSet;
use std::sync::Arc;

use contracts::{InterestPosting, InterestPostingRequest};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tracing::Instrument;

use crate::bookings;
use crate::error::LedgerError;
use crate::state::AppState;

/// The most bookings in one transaction (a run's chunk books 200).
pub const MAX_BATCH: usize = 256;

/// Requests queued beyond those in flight before a caller waits to queue.
const QUEUE_DEPTH: usize = 4096;

type Answer = Result<InterestPosting, LedgerError>;

struct Pending {
    request: InterestPostingRequest,
    answer: oneshot::Sender<Answer>,
    /// The span it was queued from: its booking is traced under it.
    span: tracing::Span,
}

/// Where on-demand bookings are queued (cloned into the state; one batcher per process).
#[derive(Clone)]
pub struct BookingQueue {
    /// `None`: batching is off, each booking is a transaction of its own (as before batching).
    sender: Option<mpsc::Sender<Pending>>,
}

/// The batcher's end of the queue, until [`serve`] is given it.
pub struct Batcher {
    receiver: mpsc::Receiver<Pending>,
    in_flight: usize,
}

impl BookingQueue {
    /// A queue whose batcher keeps at most `in_flight` booking transactions going at once; with
    /// 0, no batcher: each booking goes alone (to compare, or to turn batching off).
    pub fn new(in_flight: usize) -> (Self, Option<Batcher>) {
        if in_flight == 0 {
            return (Self { sender: None }, None);
        }
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        (Self { sender: Some(sender) }, Some(Batcher { receiver, in_flight }))
    }

    /// Books `request` with whatever else is queued; the answer a booking alone would give.
    pub async fn book(&self, state: &AppState, request: &InterestPostingRequest) -> Answer {
        let Some(sender) = &self.sender else {
            return bookings::book_interest_alone(state, request).await;
        };
        let (answer, answered) = oneshot::channel();
        let pending = Pending { request: request.clone(), answer, span: tracing::Span::current() };
        if sender.send(pending).await.is_err() {
            // No batcher (it has stopped): the booking alone is still correct.
            return bookings::book_interest_alone(state, request).await;
        }
        // Dropped unanswered only if the batcher's task ended abnormally: a retry under the same
        // key replays whatever was booked.
        answered.await.unwrap_or(Err(LedgerError::Busy))
    }
}

/// Takes queued bookings into batches and books them, `in_flight` transactions at most, until the
/// queue closes.
pub async fn serve(state: AppState, batcher: Batcher) {
    let Batcher { mut receiver, in_flight } = batcher;
    let slots = Arc::new(Semaphore::new(in_flight));
    let alone = Arc::new(Semaphore::new(ALONE_AT_ONCE));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = receiver.recv().await else { return };
        let mut accounts = HashSet::new();
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(p) = next.take() {
            if p.answer.is_closed() {
                // Its caller has gone (nothing was written for it): not booked.
            } else if accounts.insert(p.request.account_id) {
                batch.push(p);
            } else {
                // A second request for an account in this batch: alone, waiting for the row.
                book_alone(&state, &alone, p);
            }
            if batch.len() < MAX_BATCH {
                next = receiver.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        let (state, alone) = (state.clone(), alone.clone());
        tokio::spawn(async move {
            book_batch(&state, &alone, batch).await;
            drop(slot);
        });
    }
}

/// Bookings alone (a busy row, an account twice, a failed batch) at once at most: each may hold a
/// connection for its whole lock budget, and the pool is shared with everything else.
const ALONE_AT_ONCE: usize = 8;

/// Books `pending` alone, in the background, and answers it.
fn book_alone(state: &AppState, alone: &Arc<Semaphore>, pending: Pending) {
    let (state, alone) = (state.clone(), alone.clone());
    tokio::spawn(async move {
        let Ok(_turn) = alone.acquire_owned().await else { return };
        if pending.answer.is_closed() {
            return;
        }
        let answer = bookings::book_interest_alone(&state, &pending.request).instrument(pending.span.clone()).await;
        let _ = pending.answer.send(answer);
    });
}

/// Books one batch in one attempt and answers each request; what it could not decide (a busy row,
/// or a batch that failed as a whole — a fence held, a deadlock, a lost connection) is booked
/// alone, where each waits and retries within its own budget.
async fn book_batch(state: &AppState, alone: &Arc<Semaphore>, batch: Vec<Pending>) {
    metrics::histogram!("ledger_booking_batch_size").record(batch.len() as f64);
    let requests: Vec<&InterestPostingRequest> = batch.iter().map(|p| &p.request).collect();
    // One span per request, each under that request's own span, all open for the transaction.
    let spans: Vec<tracing::Span> = batch.iter().map(|p| bookings::batch_span(&p.span, batch.len())).collect();
    let outcome = match spans.first() {
        Some(span) => bookings::book_each(state, &requests, bookings::Attempts::One).instrument(span.clone()).await,
        None => return,
    };
    drop(spans);
    let results: Vec<Option<Answer>> = match outcome {
        Ok(results) => results
            .into_iter()
            .map(|r| match r {
                Err(LedgerError::Busy) => None,
                answered => Some(answered),
            })
            .collect(),
        Err(e) => {
            // Nothing of it was written (or, if its commit's acknowledgement was lost, each alone
            // finds its own booking under its key and replays it).
            tracing::info!(error = %e, size = batch.len(), "booking batch not decided as a whole; booking each alone");
            batch.iter().map(|_| None).collect()
        }
    };
    for (pending, result) in batch.into_iter().zip(results) {
        match result {
            Some(answer) => {
                let _ = pending.answer.send(answer);
            }
            None => book_alone(state, alone, pending),
        }
    }
}
