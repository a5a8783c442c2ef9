//! Resource bounds of the HTTP layer that the framework does not set by itself: how long a client
//! may take to send a request's body. (Body sizes are per route, `web::api_routes` and actix's
//! form limits; header time and connection counts are set in `startup`.)

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// The most time a request body may take to arrive, however it trickles in: a metering request
/// of 64 MiB needs time on a slow link; anything else is a few kilobytes.
pub const USAGE_BODY_TIME: Duration = Duration::from_secs(60);
pub const BODY_TIME: Duration = Duration::from_secs(10);

/// A body stream that fails once its deadline passes.
struct Deadline<S> {
    inner: S,
    timer: Pin<Box<actix_web::rt::time::Sleep>>,
}

impl<S> Stream for Deadline<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not sent in time",
            )))));
        }
        Poll::Pending
    }
}

/// Middleware: give every request body a deadline (`USAGE_BODY_TIME` for metering, else
/// `BODY_TIME`); a body still arriving past it fails the request with a 4xx and the connection
/// closes.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let time = if req.path() == "/api/v1/usage" {
        USAGE_BODY_TIME
    } else {
        BODY_TIME
    };
    let inner = req.take_payload();
    let timed = Deadline {
        inner,
        timer: Box::pin(actix_web::rt::time::sleep(time)),
    };
    req.set_payload(Payload::from(
        Box::pin(timed) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
    ));
    next.call(req).await
}
