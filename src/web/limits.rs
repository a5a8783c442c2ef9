//! Resource bounds of the HTTP layer that the framework does not set by itself: how slowly a
//! client may send a request's body, and that a body left unread ends its connection. (Body sizes
//! are per route, `web::api_routes` and actix's form limits; header time and connection counts are
//! set in `startup`.)

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::rt::time::{Instant, Sleep};
use actix_web::web::Bytes;
use futures_util::Stream;
use std::cell::{Cell, RefCell};
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

/// A request's body as the framework hands it over, shared between the handler's stream and the
/// response that holds it until sent.
type Body = Rc<RefCell<Payload>>;

/// A body stream that fails once it falls behind its deadline. The timer is made, and moved, only
/// when the body stalls: a body that arrives with its head (every consume call) never touches the
/// runtime's timer wheel.
struct Deadline {
    inner: Body,
    started: Instant,
    received: u64,
    timer: Option<Pin<Box<Sleep>>>,
    fired: Rc<Cell<bool>>,
}

impl Deadline {
    fn deadline(&self) -> Instant {
        self.started + BODY_TIME + Duration::from_secs(self.received / MIN_BODY_RATE)
    }
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = Pin::new(&mut *self.inner.borrow_mut()).poll_next(cx);
        if let Poll::Ready(item) = polled {
            if let Some(Ok(chunk)) = &item {
                self.received += chunk.len() as u64;
            }
            return Poll::Ready(item);
        }
        let deadline = self.deadline();
        let timer = match &mut self.timer {
            Some(timer) => {
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            slot @ None => slot.insert(Box::pin(actix_web::rt::time::sleep_until(deadline))),
        };
        if timer.as_mut().poll(cx).is_ready() {
            self.fired.set(true);
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not sent in time",
            )))));
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request's body alive until it is sent. actix drains a
    /// dropped chunked body for as long as the client sends it; a body still held when the answer
    /// ends makes actix close the connection instead (after at most its client-disconnect time).
    pub struct HoldingRequest<B> {
        #[pin]
        body: B,
        _request: Body,
    }
}

impl<B: MessageBody> MessageBody for HoldingRequest<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.project().body.poll_next(cx)
    }
}

/// Middleware: give every request body a deadline (`BODY_TIME`, plus a second per
/// `MIN_BODY_RATE` bytes received); a body that falls behind fails the request with a 4xx. A body
/// not read to its end (too slow, or sent to a route that reads none) ends the connection after
/// the answer rather than being read and discarded for as long as the client sends it.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let body: Body = Rc::new(RefCell::new(req.take_payload()));
    let fired = Rc::new(Cell::new(false));
    if !matches!(*body.borrow(), Payload::None) {
        let timed = Deadline {
            inner: body.clone(),
            started: Instant::now(),
            received: 0,
            timer: None,
            fired: fired.clone(),
        };
        req.set_payload(Payload::from(
            Box::pin(timed) as Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>
        ));
    }
    let mut response = next.call(req).await?;
    if fired.get() {
        response
            .response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(response.map_body(|_, body_out| HoldingRequest {
        body: body_out,
        _request: body,
    }))
}
