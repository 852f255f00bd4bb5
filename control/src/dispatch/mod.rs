//! The one place a request becomes an effect: every [`Request`] but the
//! streamed `sessions` is answered here, by a typed [`Reply`] or an
//! [`ApiError`]. The transports (the control socket, HTTP) only read
//! requests and write answers.

pub mod history;
pub mod model;

use crate::view::View;
use sluice_control::api::{Answer, ApiError, Reply, Request};
use std::sync::Arc;

/// Answers `request`.
pub async fn dispatch(view: &Arc<View>, request: Request) -> Answer {
    let running = &view.running;
    // One snapshot for the whole answer.
    let live = running.live();
    Ok(match request {
        Request::Status => Reply::Status(model::status(view, &live)),
        Request::Stats => Reply::Stats(model::stats(view, &live)),
        Request::VirtualServers => Reply::VirtualServers(model::servers(running, &live)),
        Request::Members => Reply::Members(model::members(running, &live)),
        Request::Neighbors => Reply::Neighbors(model::neighbors(running, &live)),
        Request::Routes => Reply::Routes(model::routes(&live)),
        Request::Metrics => Reply::Metrics(model::metrics(view, &live)),
        Request::Overview => Reply::Overview(Box::new(model::overview(view, &live))),
        Request::Member(cmd) => Reply::Done(crate::admin::apply(&live, &cmd)?),
        Request::Reload => {
            let reloaded = crate::reload::run(running.clone(), view.reloader.clone()).await;
            Reply::Reloaded(reloaded?)
        }
        Request::Ha => Reply::Ha(crate::ha::status::report(running, view.sync.as_deref())),
        Request::HaReady => {
            crate::ha::status::ready(running, view.sync.as_deref())
                .map_err(|message| ApiError::NotReady { message })?;
            Reply::Ready
        }
        Request::Announce => Reply::Announce(crate::announce::report(running, &view.announce)?),
        Request::Drain | Request::Resume => {
            let draining = request == Request::Drain;
            let done = crate::announce::set_draining(running, &view.announce, draining)?;
            Reply::Done(vec![done])
        }
        Request::Sessions(_) => {
            return Err(ApiError::BadRequest {
                message: "sessions answers as a stream, on the control socket only".into(),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> String {
        crate::testing::web_config(
            r#"{ address = "10.20.0.11:80" }, { address = "10.20.0.12:80", weight = 3 }"#,
            "",
        )
    }

    #[tokio::test]
    async fn text_json_and_metrics_are_renderings_of_one_answer() {
        let view = Arc::new(crate::testing::view(&cfg(), 2));
        let members = dispatch(&view, Request::Members).await.unwrap();
        let text = members.text();
        assert!(text.starts_with("virtual_server pool member role state"));
        let row = text.lines().nth(2).unwrap();
        assert!(
            row.starts_with("web web 10.20.0.12:80 primary up "),
            "{text}"
        );
        assert!(
            row.ends_with(" 0 default - 3 3 - not checked yet"),
            "{text}"
        );
        let json = members.json();
        assert_eq!(json[1]["member"], "10.20.0.12:80");
        assert_eq!(json[1]["weight"], 3);
        let Reply::Metrics(m) = dispatch(&view, Request::Metrics).await.unwrap() else {
            panic!("metrics")
        };
        let exposition = m.exposition();
        assert!(exposition.contains(
            "\nsluice_member_weight{virtual_server=\"web\",pool=\"web\",member=\"10.20.0.12:80\"} 3\n"
        ), "{exposition}");
        assert!(exposition.contains("\nsluice_drops_total{reason=\"no_session\",worker=\"1\"} 0\n"));
        let disable = typed("member disable 10.20.0.11:80");
        let done = dispatch(&view, disable).await.unwrap();
        assert_eq!(
            done.text(),
            "ok: member 10.20.0.11:80 (pool web) disabled\n"
        );
        let after = dispatch(&view, Request::Members).await.unwrap().json();
        assert_eq!(after[0]["state"], "disabled");
        let gone = dispatch(&view, typed("member drain 10.20.0.99:80")).await;
        assert_eq!(sluice_control::api::exit_code(&gone), 1);
        assert_eq!(gone.unwrap_err().json()["kind"], "not_found");
        let refused = dispatch(&view, Request::Announce).await.unwrap_err();
        assert_eq!(refused.kind(), "not_configured");
    }

    /// A request as a person types it.
    fn typed(line: &str) -> Request {
        let words: Vec<&str> = line.split_whitespace().collect();
        sluice_control::api::parse(&words).unwrap()
    }
}
