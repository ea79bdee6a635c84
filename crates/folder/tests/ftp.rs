//! FTP and FTPS folders against a real server (pyftpdlib) on loopback.

mod common;

use std::time::{Duration, Instant};

use common::exercise;
use medrelay_folder::{Folder, FolderError, FolderOptions, FolderSpec};
use medrelay_testkit::TestPki;
use medrelay_testkit::ftp_server::{FtpServer, PASSWORD};

fn folder(url: &str, opts: FolderOptions) -> Folder {
    Folder::new(FolderSpec::parse(url).unwrap(), opts)
}

fn with_password() -> FolderOptions {
    FolderOptions {
        password: Some(PASSWORD.into()),
        ..FolderOptions::default()
    }
}

#[tokio::test]
async fn ftp_all_operations() {
    let server = FtpServer::start(None);
    std::fs::create_dir(server.root().join("inbox")).unwrap();
    let f = folder(&server.url("ftp", "inbox"), with_password());
    exercise(&f, &server.root().join("inbox")).await;
    f.close().await;
}

#[tokio::test]
async fn ftp_login_directory_and_absolute_destination() {
    let server = FtpServer::start(None);
    // The login directory itself (no path in the URL), moving to an absolute path.
    let f = folder(&server.url("ftp", ""), with_password());
    f.write_atomic("a.gdt", b"a", false).await.unwrap();
    assert_eq!(f.list().await.unwrap()[0].name, "a.gdt");
    assert_eq!(
        f.move_to("a.gdt", "/abs/done", "a.gdt").await.unwrap(),
        "a.gdt"
    );
    assert!(server.root().join("abs/done/a.gdt").is_file());
}

#[tokio::test]
async fn ftps_all_operations() {
    let pki = TestPki::generate();
    let server = FtpServer::start(Some(&pki));
    std::fs::create_dir(server.root().join("inbox")).unwrap();
    let opts = FolderOptions {
        ca: Some(pki.ca.clone()),
        ..with_password()
    };
    let f = folder(&server.url("ftps", "inbox"), opts);
    // The server requires TLS on control and data connections (see
    // ftps_server_refuses_plain_ftp), so all of this went over TLS.
    exercise(&f, &server.root().join("inbox")).await;
}

#[tokio::test]
async fn ftps_untrusted_certificate_is_a_tls_error() {
    let pki = TestPki::generate();
    let server = FtpServer::start(Some(&pki));
    // Without the test CA the server's certificate is not trusted.
    let f = folder(&server.url("ftps", ""), with_password());
    let err = f.list().await.unwrap_err();
    assert!(matches!(err, FolderError::Tls { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains(PASSWORD));
}

#[tokio::test]
async fn ftps_server_refuses_plain_ftp() {
    let pki = TestPki::generate();
    let server = FtpServer::start(Some(&pki));
    // Plain FTP to a server that requires TLS: login is refused.
    let f = folder(&server.url("ftp", ""), with_password());
    let err = f.list().await.unwrap_err();
    assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn ftp_wrong_password_is_a_retryable_connect_error() {
    let server = FtpServer::start(None);
    let f = folder(
        &server.url("ftp", ""),
        FolderOptions {
            password: Some("wrong".into()),
            ..FolderOptions::default()
        },
    );
    let err = f.list().await.unwrap_err();
    assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.to_string().contains("wrong"), "{err}");
    // The password from the URL is used when the options have none.
    let url = server
        .url("ftp", "")
        .replace("medrelay@", "medrelay:s3cret%20pass@");
    let f = folder(&url, FolderOptions::default());
    assert_eq!(f.list().await.unwrap(), vec![]);
    assert!(!f.spec().display().contains("s3cret"));
}

#[tokio::test]
async fn ftp_nothing_listening_is_a_retryable_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = folder(&format!("ftp://u@127.0.0.1:{port}/"), with_password());
    let err = f.list().await.unwrap_err();
    assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn ftp_silent_server_hits_the_connect_timeout() {
    // Accepts TCP but never sends the greeting.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let f = folder(
        &format!("ftp://u@127.0.0.1:{port}/"),
        FolderOptions {
            connect_timeout: Duration::from_millis(500),
            ..with_password()
        },
    );
    let started = Instant::now();
    let err = f.list().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
    assert!(err.is_retryable());
    holder.abort();
}

#[tokio::test]
async fn ftp_reconnects_after_server_restart() {
    let mut server = FtpServer::start(None);
    let opts = FolderOptions {
        connect_timeout: Duration::from_secs(3),
        io_timeout: Duration::from_secs(3),
        ..with_password()
    };
    let f = folder(&server.url("ftp", ""), opts);
    f.write_atomic("a.gdt", b"a", false).await.unwrap();

    // The session's server goes away; a new one comes up on the same port.
    server.restart();
    let started = Instant::now();
    let names: Vec<_> = f
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["a.gdt"]);
    assert!(started.elapsed() < Duration::from_secs(6));

    // Same for an operation that changes something (the session is checked first).
    server.restart();
    f.write_atomic("b.gdt", b"b", false).await.unwrap();
    server.restart();
    assert_eq!(
        f.move_to("b.gdt", "archive", "b.gdt").await.unwrap(),
        "b.gdt"
    );
    server.restart();
    assert_eq!(f.read("a.gdt").await.unwrap(), b"a");

    // Server gone for good: a retryable error, quickly.
    server.kill();
    let started = Instant::now();
    let err = f.list().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn ftp_frozen_server_hits_the_io_timeout() {
    let server = FtpServer::start(None);
    let opts = FolderOptions {
        connect_timeout: Duration::from_secs(2),
        io_timeout: Duration::from_secs(2),
        ..with_password()
    };
    let f = folder(&server.url("ftp", ""), opts);
    f.write_atomic("a.gdt", b"a", false).await.unwrap();

    // The connection stays open but nothing is answered any more.
    server.signal("-STOP");
    let started = Instant::now();
    let err = f.read("a.gdt").await.unwrap_err();
    let elapsed = started.elapsed();
    server.signal("-CONT");
    assert!(matches!(err, FolderError::Timeout { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // The timed-out session was dropped; the next operation starts afresh.
    assert_eq!(f.read("a.gdt").await.unwrap(), b"a");
}
