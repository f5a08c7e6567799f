//! The portal serving HTTPS itself: a certificate and key from PEM files (made here with
//! `openssl`), HTTP/1.1 and HTTP/2 over TLS, the client's address still known, HSTS on
//! every response, and plain HTTP refused on the TLS port.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;

fn self_signed(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    anyhow::ensure!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    Ok((cert, key))
}

#[tokio::test]
async fn the_portal_serves_https_with_hsts_and_knows_the_client() -> anyhow::Result<()> {
    portal::install_crypto_provider();
    let dir = tempfile::tempdir()?;
    let (cert, key) = self_signed(dir.path())?;
    let config = portal::tls::server_config(&cert, &key)?;
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = tcp.local_addr()?.port();
    let listener = portal::tls::Listener::tls(tcp, config)?;
    let app = portal::tls::with_hsts(Router::new().route(
        "/whoami",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.ip().to_string() }),
    ));
    let server = tokio::spawn(async move {
        axum::serve(
            axum::serve::ListenerExt::tap_io(listener, |_| ()),
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let root = reqwest::Certificate::from_pem(&std::fs::read(&cert)?)?;
    for http2 in [false, true] {
        let mut client = reqwest::Client::builder().add_root_certificate(root.clone());
        if http2 {
            client = client.http2_prior_knowledge();
        }
        let response = client
            .build()?
            .get(format!("https://localhost:{port}/whoami"))
            .send()
            .await?;
        assert_eq!(response.status(), 200);
        if http2 {
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
        }
        assert_eq!(
            response
                .headers()
                .get("strict-transport-security")
                .and_then(|v| v.to_str().ok()),
            Some(portal::tls::HSTS)
        );
        assert_eq!(response.text().await?, "127.0.0.1");
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/whoami")).await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    // A key that is not the certificate's is refused at start.
    let other = tempfile::tempdir()?;
    let (_, other_key) = self_signed(other.path())?;
    assert!(portal::tls::server_config(&cert, &other_key).is_err());
    server.abort();
    Ok(())
}
