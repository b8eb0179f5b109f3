//! The dashboard's handlers on a one-manager test swarm (real store, real
//! orchestrator and scheduler, fake agents): the credential check on every
//! path, the state document, and each action changing the store the way
//! the Control API does.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::http::{header, Request, StatusCode};
use rswarm_proto::types::service_spec::Mode;
use rswarm_proto::types::{NodeAvailability, ReplicatedService, Service};
use rswarm_raft::Store;
use tonic::Status;
use tower::ServiceExt;

use super::{router, token, StoreSource};
use crate::objects;
use crate::orchestrator::testing::{obedient_agent, TestSwarm};

struct Fixed(Store);

#[tonic::async_trait]
impl StoreSource for Fixed {
    async fn store(&self) -> Result<Store, Status> {
        Ok(self.0.clone())
    }
}

struct NotAManager;

#[tonic::async_trait]
impl StoreSource for NotAManager {
    async fn store(&self) -> Result<Store, Status> {
        Err(Status::failed_precondition(
            "This node is not a swarm manager.",
        ))
    }
}

async fn send(store: &Store, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = router(Arc::new(Fixed(store.clone())))
        .oneshot(req)
        .await
        .expect("router answers");
    let (parts, body) = r.into_parts();
    let bytes = to_bytes(body, 1 << 20).await.expect("body");
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into(),
    )
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).expect("request")
}

fn post(path: &str, token: Option<&str>, json: &str) -> Request<Body> {
    let mut b = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(json.to_string())).expect("request")
}

async fn swarm_with_web() -> (TestSwarm, String, String) {
    let mut swarm = TestSwarm::start(5).await;
    swarm.run_agents(obedient_agent());
    swarm.add_node("node-a", |_| {}).await;
    let id = swarm
        .create_service(
            "web",
            Mode::Replicated(ReplicatedService { replicas: 2 }),
            |_| {},
        )
        .await;
    let token = token::get_or_rotate(&swarm.store, false).await.unwrap();
    (swarm, id, token)
}

fn replicas(store: &Store, id: &str) -> u64 {
    match objects::get::<Service>(store, id)
        .unwrap()
        .unwrap()
        .spec
        .unwrap()
        .mode
    {
        Some(Mode::Replicated(r)) => r.replicas,
        _ => panic!("not replicated"),
    }
}

#[tokio::test]
async fn without_the_token_every_path_is_refused() {
    let (swarm, id, _) = swarm_with_web().await;
    let store = &swarm.store;
    for req in [
        get("/api/state", None),
        get("/api/state", Some("RSWDT-wrong")),
        get("/nosuch", None),
        post(
            &format!("/api/services/{id}/scale"),
            None,
            r#"{"replicas":5}"#,
        ),
        post("/api/services/web/rollback", Some(""), "{}"),
    ] {
        let (code, _, body) = send(store, req).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
        assert!(!body.contains("web"), "nothing is shown: {body}");
    }
    let (code, _, body) = send(store, get("/", None)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(body.contains("name=\"token\""), "the login form: {body}");
    assert!(!body.contains("/api/state"), "not the app: {body}");
    assert_eq!(replicas(store, &id), 2, "nothing was scaled");
}

#[tokio::test]
async fn the_state_shows_services_nodes_tasks_and_raft() {
    let (swarm, id, token) = swarm_with_web().await;
    swarm
        .wait_for("two running", &id, |tasks| {
            (tasks
                .iter()
                .filter(|t| crate::orchestrator::task::state(t) == 512)
                .count()
                == 2)
                .then_some(())
        })
        .await;
    let (code, _, body) = send(&swarm.store, get("/api/state", Some(&token))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let web = &v["services"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(web["mode"], "replicated");
    assert_eq!(web["desired"], 2);
    assert_eq!(web["running"], 2);
    assert_eq!(v["nodes"][0]["hostname"], "node-a");
    assert_eq!(v["nodes"][0]["availability"], "active");
    let on_node: Vec<_> = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["node_id"] == v["nodes"][0]["id"] && t["state"] == "running")
        .collect();
    assert_eq!(on_node.len(), 2, "{body}");
    assert_eq!(v["raft"]["state"], "Leader");
    assert!(v["raft"]["term"].as_u64().unwrap() >= 1);
    let (code, headers, page) = send(&swarm.store, get("/", Some(&token))).await;
    assert_eq!(code, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(page.contains("/api/state"), "the app page");
    for loads in ["src=", "<link", "@import", "url("] {
        assert!(
            !page.contains(loads),
            "the page loads nothing else ({loads})"
        );
    }
}

#[tokio::test]
async fn actions_go_through_the_control_api() {
    let (swarm, id, token) = swarm_with_web().await;
    let store = &swarm.store;
    let t = Some(token.as_str());
    let (code, _, body) = send(
        store,
        post("/api/services/web/scale", t, r#"{"replicas":4}"#),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(replicas(store, &id), 4);

    let force = |s: &Store| {
        objects::get::<Service>(s, &id)
            .unwrap()
            .unwrap()
            .spec
            .unwrap()
            .task
            .unwrap()
            .force_update
    };
    let before = force(store);
    let (code, _, body) = send(
        store,
        post(&format!("/api/services/{id}/force-update"), t, "{}"),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(force(store), before + 1);

    let (code, _, body) = send(store, post("/api/services/web/rollback", t, "{}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        force(store),
        before,
        "rolled back to the spec before the force"
    );

    let node = objects::list::<rswarm_proto::types::Node>(store).unwrap()[0]
        .id
        .clone();
    let path = format!("/api/nodes/{node}/availability");
    let (code, _, body) = send(store, post(&path, t, r#"{"availability":"drain"}"#)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let n = objects::get::<rswarm_proto::types::Node>(store, &node)
        .unwrap()
        .unwrap();
    assert_eq!(n.spec.unwrap().availability, NodeAvailability::Drain as i32);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let (swarm, id, token) = swarm_with_web().await;
    let store = &swarm.store;
    let t = Some(token.as_str());
    let cases = [
        (r#"{"replicas":10001}"#, StatusCode::BAD_REQUEST, "limit"),
        (
            r#"{"replicas":-1}"#,
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
        (
            r#"{"replicas":3,"x":1}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
    ];
    for (json, want, words) in cases {
        let (code, _, body) = send(store, post("/api/services/web/scale", t, json)).await;
        assert_eq!(code, want, "{json}: {body}");
        assert!(body.contains(words), "{json}: {body}");
    }
    let big = format!(r#"{{"replicas":3,"pad":"{}"}}"#, "x".repeat(10_000));
    let (code, _, _) = send(store, post("/api/services/web/scale", t, &big)).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let form = Request::post("/api/services/web/scale")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("replicas=3"))
        .unwrap();
    let (code, _, _) = send(store, form).await;
    assert_eq!(
        code,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "no cross-site form posts"
    );
    let (code, _, body) = send(
        store,
        post("/api/services/nosuch/scale", t, r#"{"replicas":1}"#),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (code, _, body) = send(
        store,
        post("/api/nodes/x/availability", t, r#"{"availability":"off"}"#),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(replicas(store, &id), 2);
}

#[tokio::test]
async fn the_login_form_sets_a_cookie_that_a_rotation_revokes() {
    let (swarm, _, token) = swarm_with_web().await;
    let store = &swarm.store;
    let login = |tok: &str| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={tok}")))
            .unwrap()
    };
    let (code, _, body) = send(store, login("RSWDT-bad")).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert!(body.contains("not the current dashboard token"));
    let (code, headers, _) = send(store, login(&token)).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap().to_string();
    let with_cookie = || {
        Request::get("/api/state")
            .header(header::COOKIE, &pair)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(store, with_cookie()).await.0, StatusCode::OK);
    token::get_or_rotate(store, true).await.unwrap();
    assert_eq!(send(store, with_cookie()).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(store, get("/api/state", Some(&token))).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_node_without_a_manager_shows_nothing() {
    let r = router(Arc::new(NotAManager))
        .oneshot(get("/api/state", None))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}
