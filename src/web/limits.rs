//! Resource bounds of the HTTP layer that the framework does not set by itself: how slowly a
//! client may send a request's body. (Body sizes are per route, `web::api_routes` and actix's form
//! limits; header time and connection counts are actix's.)

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::rt::time::{Instant, Sleep};
use actix_web::web::Bytes;
use futures_util::Stream;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Time any body gets, whatever its size.
pub const BODY_TIME: Duration = Duration::from_secs(10);
/// And the slowest rate a body may arrive at past that: each 64 KiB received earn a second more
/// (a 64 MiB metering body gets 17 minutes; a trickle of a byte a second gets nothing more).
pub const MIN_BODY_RATE: u64 = 64 * 1024;

/// A body stream that fails once it falls behind its deadline.
struct Deadline<S> {
    inner: S,
    started: Instant,
    received: u64,
    timer: Pin<Box<Sleep>>,
    fired: Rc<Cell<bool>>,
}

impl<S> Deadline<S> {
    fn deadline(&self) -> Instant {
        self.started + BODY_TIME + Duration::from_secs(self.received / MIN_BODY_RATE)
    }
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            if let Some(Ok(chunk)) = &item {
                self.received += chunk.len() as u64;
                let deadline = self.deadline();
                self.timer.as_mut().reset(deadline);
            }
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            self.fired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not sent in time",
            )))));
        }
        Poll::Pending
    }
}

/// Middleware: give every request body a deadline (`BODY_TIME`, plus a second per
/// `MIN_BODY_RATE` bytes received); a body that falls behind fails the request with a 4xx, and
/// the connection is closed after the answer rather than kept to read the rest.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let fired = Rc::new(Cell::new(false));
    let started = Instant::now();
    let timed = Deadline {
        inner: req.take_payload(),
        started,
        received: 0,
        timer: Box::pin(actix_web::rt::time::sleep_until(started + BODY_TIME)),
        fired: fired.clone(),
    };
    req.set_payload(Payload::from(
        Box::pin(timed) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    let mut response = next.call(req).await?;
    if fired.get() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response)
}
