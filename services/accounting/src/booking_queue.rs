//! On-demand interest bookings, batched as a payout run's chunk is: requests that arrive while a
//! booking transaction is in flight wait for it and then go together in the next one (at most
//! [`MAX_BATCH`], each account once), as TigerBeetle batches what arrives while it commits. The
//! wait adapts to load by itself: with nothing in flight a request goes at once, alone (no added
//! wait at one client at a time); under load it waits at most one transaction's time.
//!
//! Each request is decided alone under its own row lock (`bookings::book_each`, the chunk path):
//! a replay, a refusal or a stale basis answers that request only. A row another transaction holds
//! is not waited for inside the batch: that request is booked alone afterwards
//! (`book_interest_alone`, which waits for the row within the lock budget), and so is every request
//! of a batch whose transaction failed as a whole, so no request fails because of another.

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
        let pending = Pending { request: request.clone(), answer };
        if sender.send(pending).await.is_err() {
            // No batcher (it has stopped): the booking alone is still correct.
            return bookings::book_interest_alone(state, request).await;
        }
        // A batcher that dropped the answer failed before deciding: nothing was written for it.
        answered.await.unwrap_or(Err(LedgerError::Busy))
    }
}

/// Takes queued bookings into batches and books them, `in_flight` transactions at most, until the
/// queue closes.
pub async fn serve(state: AppState, batcher: Batcher) {
    let Batcher { mut receiver, in_flight } = batcher;
    let slots = Arc::new(Semaphore::new(in_flight));
    // Requests for an account already in the batch being formed, for the next one.
    let mut carried: Vec<Pending> = Vec::new();
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut next = std::mem::take(&mut carried);
        if next.is_empty() {
            match receiver.recv().await {
                Some(p) => next.push(p),
                None => return,
            }
        }
        while next.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(p) => next.push(p),
                Err(_) => break,
            }
        }
        let mut accounts = HashSet::with_capacity(next.len());
        let mut batch = Vec::with_capacity(next.len());
        for p in next {
            if batch.len() < MAX_BATCH && accounts.insert(p.request.account_id) {
                batch.push(p);
            } else {
                carried.push(p);
            }
        }
        let state = state.clone();
        tokio::spawn(async move {
            book_batch(&state, batch).await;
            drop(slot);
        });
    }
}

/// Books one batch and answers each request.
async fn book_batch(state: &AppState, batch: Vec<Pending>) {
    metrics::histogram!("ledger_booking_batch_size").record(batch.len() as f64);
    let requests: Vec<&InterestPostingRequest> = batch.iter().map(|p| &p.request).collect();
    let span = tracing::info_span!("booking_batch", size = batch.len());
    let outcome = bookings::book_each(state, &requests).instrument(span).await;
    let results: Vec<Option<Answer>> = match outcome {
        Ok(results) => results
            .into_iter()
            .map(|r| match r {
                Err(LedgerError::Busy) => None,
                answered => Some(answered),
            })
            .collect(),
        // Every retry of the transaction found a row or fence busy: so would each alone.
        Err(LedgerError::Busy) => batch.iter().map(|_| Some(Err(LedgerError::Busy))).collect(),
        Err(e) => {
            tracing::warn!(error = %e, size = batch.len(), "booking batch failed as a whole; booking each alone");
            batch.iter().map(|_| None).collect()
        }
    };
    for (pending, result) in batch.into_iter().zip(results) {
        match result {
            Some(answer) => {
                let _ = pending.answer.send(answer);
            }
            // A busy row, or a batch that failed as a whole: this request alone, waiting as it may.
            None => {
                let state = state.clone();
                tokio::spawn(async move {
                    let answer = bookings::book_interest_alone(&state, &pending.request).await;
                    let _ = pending.answer.send(answer);
                });
            }
        }
    }
}
