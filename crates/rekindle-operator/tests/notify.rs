//! Reloader's `--webhook-url` mode and `ALERT_*` alerts, received by a real
//! HTTP server on loopback.

mod support;

use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const NS: &str = "apps";

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    path: String,
    content_type: String,
    body: String,
}

/// A minimal HTTP/1.1 server that answers 200 to every request and hands
/// each one over. Returns its base URL.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let (mut length, mut content_type) = (0usize, String::new());
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).await.unwrap_or(0);
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(':').unwrap_or((header, ""));
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap_or(0),
                            "content-type" => content_type = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let body = String::from_utf8_lossy(&body).into_owned();
                    let _ = tx.send(Received {
                        path,
                        content_type,
                        body,
                    });
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Received>, what: &str) -> Received {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
        .expect("receiver running")
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn webhook_mode_announces_and_alerts_follow_rollouts() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "1")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("app-config"))
        .create(&cluster, NS)
        .await;
    let (url, mut received) = receiver().await;

    // --webhook-url: the change is announced; nothing is rolled.
    let operator = cluster
        .operator(&["--webhook-url", &format!("{url}/hook")])
        .await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "2")]).await;
    let hook = next(&mut received, "webhook call").await;
    assert_eq!(hook.path, "/hook");
    assert_eq!(hook.content_type, "application/json");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&hook.body).expect("json"),
        json!({"webhook": "update successful"})
    );
    assert_eq!(
        template_env(
            &cluster.client,
            NS,
            "web",
            "app",
            "STAKATER_APP_CONFIG_CONFIGMAP"
        )
        .await,
        None
    );
    operator.stop();
    assert!(received.try_recv().is_err(), "one announcement per change");

    // ALERT_*: a rollout is followed by Reloader's Slack alert.
    let alert_url = format!("{url}/alert");
    let _operator = cluster
        .operator_with_env(
            &[],
            &[
                ("ALERT_ON_RELOAD", "true"),
                ("ALERT_SINK", "slack"),
                ("ALERT_WEBHOOK_URL", &alert_url),
                ("ALERT_ADDITIONAL_INFO", "prod"),
            ],
        )
        .await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "3")]).await;
    let alert = next(&mut received, "alert").await;
    assert_eq!(alert.path, "/alert");
    let body: serde_json::Value = serde_json::from_str(&alert.body).expect("json");
    assert_eq!(
        body,
        json!({"attachments": [{
            "color": "good",
            "author_name": "Reloader",
            "text": "prod : Reloader detected changes in *app-config* of type *CONFIGMAP* in namespace *apps*. \
                     Hence reloaded *web* of type *Deployment* in namespace *apps*",
        }]})
    );
    assert!(
        template_env(
            &cluster.client,
            NS,
            "web",
            "app",
            "STAKATER_APP_CONFIG_CONFIGMAP"
        )
        .await
        .is_some()
    );
}

/// A minimal HTTP proxy on loopback that accepts CONNECT, records the target and the
/// `Proxy-Authorization` header, and pipes the bytes both ways.
async fn connect_proxy() -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(stream);
                let mut line = String::new();
                client.read_line(&mut line).await.unwrap_or(0);
                let mut words = line.split_whitespace();
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let target = target.to_owned();
                let mut auth = String::new();
                loop {
                    let mut header = String::new();
                    client.read_line(&mut header).await.unwrap_or(0);
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = header.split_once(':')
                        && name.eq_ignore_ascii_case("proxy-authorization")
                    {
                        auth = value.trim().to_owned();
                    }
                }
                if method != "CONNECT" {
                    let _ = client
                        .get_mut()
                        .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = tx.send((target.clone(), auth));
                let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client
                        .get_mut()
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                        .await;
                    return;
                };
                let _ = client
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await;
                let _ = tokio::io::copy_bidirectional(client.get_mut(), &mut upstream).await;
            });
        }
    });
    (format!("{addr}"), rx)
}

#[tokio::test]
#[ignore = "needs scripts/provision-k8s.sh"]
async fn alerts_go_through_alert_webhook_proxy() {
    let cluster = Cluster::start().await;
    create_namespace(&cluster.client, NS).await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "1")]).await;
    deployment("web")
        .auto()
        .app(env_from_config_map("app-config"))
        .create(&cluster, NS)
        .await;
    let (url, mut received) = receiver().await;
    let (proxy, mut tunnels) = connect_proxy().await;
    let _operator = cluster
        .operator_with_env(
            &[],
            &[
                ("ALERT_ON_RELOAD", "true"),
                ("ALERT_SINK", "raw"),
                ("ALERT_WEBHOOK_URL", &format!("{url}/alert")),
                ("ALERT_WEBHOOK_PROXY", &format!("http://ops:s%40fe@{proxy}")),
            ],
        )
        .await;
    put_config_map(&cluster.client, NS, "app-config", &[("k", "2")]).await;
    let alert = next(&mut received, "alert").await;
    assert_eq!(alert.path, "/alert");
    let (target, auth) = tokio::time::timeout(DEADLINE, tunnels.recv())
        .await
        .expect("a tunnel")
        .expect("proxy running");
    assert_eq!(
        format!("http://{target}"),
        url,
        "the tunnel led to the receiver"
    );
    // base64("ops:s@fe")
    assert_eq!(auth, "Basic b3BzOnNAZmU=");
}
