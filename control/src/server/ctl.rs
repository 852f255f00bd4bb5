//! The control socket: one request line, one answer (`api::wire`). A JSON
//! request (`sluicectl`) is answered typed; a command line typed by a
//! person is answered with the text (or `--json`) rendered from the same
//! answer. Each step is bounded in time (the request, each write, each
//! worker's slice), not the whole: `sessions` streams its answer for as
//! long as the workers hand over slices.

use super::{read_line, write_all, CLIENT_TIMEOUT};
use crate::sessions::FrameSink;
use crate::view::View;
use sluice_control::api::wire::{self, Form, Incoming};
use sluice_control::api::{Request, SessionsFrame, SessionsQuery, SessionsRender};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::net::UnixStream;

/// How long a client may take to take one chunk of a sessions answer.
const STREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one client's request.
pub(super) async fn serve(stream: UnixStream, view: Arc<View>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let line = read_line(r, CLIENT_TIMEOUT).await?;
    let Incoming { request, form } = match wire::read_request(&line) {
        Ok(incoming) => incoming,
        Err((e, form)) => {
            let out = wire::answer_in(form, &Err(e));
            return write_all(&mut w, out.as_bytes(), CLIENT_TIMEOUT).await;
        }
    };
    match (request, form) {
        (Request::Sessions(q), Form::Typed) => sessions(&view, &q, &mut Typed { w: &mut w }).await,
        (Request::Sessions(q), Form::Text { json }) => {
            let render = SessionsRender::new(&q, json);
            sessions(&view, &q, &mut Rendered { w: &mut w, render }).await
        }
        (request, form) => {
            let answer = crate::dispatch::dispatch(&view, request).await;
            let out = wire::answer_in(form, &answer);
            write_all(&mut w, out.as_bytes(), CLIENT_TIMEOUT).await
        }
    }
}

async fn sessions(
    view: &View,
    q: &SessionsQuery,
    sink: &mut impl FrameSink,
) -> std::io::Result<()> {
    crate::sessions::stream(&view.running, &view.sessions, q, sink).await
}

/// Frames as JSON lines, for sluicectl to render.
struct Typed<'a, W> {
    w: &'a mut W,
}

impl<W: AsyncWrite + Unpin> FrameSink for Typed<'_, W> {
    async fn put(&mut self, frame: SessionsFrame) -> std::io::Result<()> {
        let line = wire::json_line(&frame);
        write_all(self.w, line.as_bytes(), STREAM_WRITE_TIMEOUT).await
    }
}

/// Frames rendered as text (or JSON) for a person on the socket.
struct Rendered<'a, W> {
    w: &'a mut W,
    render: SessionsRender,
}

impl<W: AsyncWrite + Unpin> FrameSink for Rendered<'_, W> {
    async fn put(&mut self, frame: SessionsFrame) -> std::io::Result<()> {
        let text = self.render.frame(&frame);
        write_all(self.w, text.as_bytes(), STREAM_WRITE_TIMEOUT).await
    }
}
