//! SFTP folders against a real SSH/SFTP server (russh + russh-sftp, in process) on
//! loopback.

mod common;

use std::time::{Duration, Instant};

use common::exercise;
use medrelay_folder::{Folder, FolderError, FolderOptions, FolderSpec};
use medrelay_testkit::sftp_server::{PASSWORD, SftpServer, USER};
use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

fn folder(url: &str, opts: FolderOptions) -> Folder {
    Folder::new(FolderSpec::parse(url).unwrap(), opts)
}

fn password_opts(server: &SftpServer) -> FolderOptions {
    FolderOptions {
        password: Some(PASSWORD.into()),
        host_key_fingerprint: Some(server.fingerprint()),
        ..FolderOptions::default()
    }
}

#[tokio::test]
async fn sftp_password_all_operations() {
    let server = SftpServer::start(true).await;
    std::fs::create_dir(server.root().join("inbox")).unwrap();
    let f = folder(&server.url("/inbox"), password_opts(&server));
    exercise(&f, &server.root().join("inbox")).await;
    f.close().await;
    // Usable again after close.
    assert_eq!(f.list().await.unwrap(), vec![]);
}

#[tokio::test]
async fn sftp_without_posix_rename_all_operations() {
    // A server with plain SFTP v3 only: replacing falls back to remove + rename.
    let server = SftpServer::start(false).await;
    let f = folder(&server.url("/~/"), password_opts(&server));
    exercise(&f, &server.root()).await;
}

#[tokio::test]
async fn sftp_public_key_and_known_hosts() {
    let server = SftpServer::start(true).await;
    let known_hosts = server.dir().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "# test\n[127.0.0.1]:{} {}\n",
            server.port,
            server.host_key.public_key().to_openssh().unwrap()
        ),
    )
    .unwrap();
    let opts = FolderOptions {
        private_key: Some(server.user_key_path.clone()),
        known_hosts: Some(known_hosts),
        ..FolderOptions::default()
    };
    let f = folder(&server.url("/"), opts);
    f.write_atomic("k.gdt", b"key auth", false).await.unwrap();
    assert_eq!(
        std::fs::read(server.root().join("k.gdt")).unwrap(),
        b"key auth"
    );
    assert_eq!(f.list().await.unwrap()[0].name, "k.gdt");
}

#[tokio::test]
async fn sftp_encrypted_key_with_passphrase() {
    let server = SftpServer::start(true).await;
    let key = russh::keys::load_secret_key(&server.user_key_path, None).unwrap();
    let encrypted = key
        .encrypt(&mut russh::keys::key::safe_rng(), "pass phrase")
        .unwrap();
    let path = server.dir().join("id_encrypted");
    std::fs::write(
        &path,
        encrypted.to_openssh(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let opts = FolderOptions {
        private_key: Some(path.clone()),
        key_passphrase: Some("pass phrase".into()),
        host_key_fingerprint: Some(server.fingerprint()),
        ..FolderOptions::default()
    };
    assert_eq!(folder(&server.url("/"), opts).list().await.unwrap(), vec![]);

    // Wrong passphrase: a configuration problem, not a connection one.
    let opts = FolderOptions {
        private_key: Some(path),
        key_passphrase: Some("wrong".into()),
        host_key_fingerprint: Some(server.fingerprint()),
        ..FolderOptions::default()
    };
    let err = folder(&server.url("/"), opts).list().await.unwrap_err();
    assert!(matches!(err, FolderError::Config { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn sftp_unknown_key_falls_back_to_password() {
    let server = SftpServer::start(true).await;
    let other = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap();
    let path = server.dir().join("id_other");
    std::fs::write(&path, other.to_openssh(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let opts = FolderOptions {
        private_key: Some(path.clone()),
        ..password_opts(&server)
    };
    assert_eq!(folder(&server.url("/"), opts).list().await.unwrap(), vec![]);

    // Without the password: authentication fails.
    let opts = FolderOptions {
        private_key: Some(path),
        host_key_fingerprint: Some(server.fingerprint()),
        ..FolderOptions::default()
    };
    let err = folder(&server.url("/"), opts).list().await.unwrap_err();
    assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn sftp_host_key_mismatch() {
    let server = SftpServer::start(true).await;
    let other = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap();
    let wrong = other
        .public_key()
        .fingerprint(russh::keys::HashAlg::Sha256)
        .to_string();
    let opts = FolderOptions {
        host_key_fingerprint: Some(wrong.clone()),
        ..password_opts(&server)
    };
    let f = folder(&server.url("/"), opts);
    let err = f.list().await.unwrap_err();
    match &err {
        FolderError::HostKey { reason, .. } => {
            assert!(reason.contains(&server.fingerprint()), "{reason}");
            assert!(reason.contains(&wrong), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable());
    // No file was written before the key was rejected.
    assert!(std::fs::read_dir(server.root()).unwrap().next().is_none());

    // The fingerprint without its "SHA256:" prefix is accepted too.
    let bare = server
        .fingerprint()
        .trim_start_matches("SHA256:")
        .to_owned();
    let opts = FolderOptions {
        host_key_fingerprint: Some(bare),
        ..password_opts(&server)
    };
    assert_eq!(folder(&server.url("/"), opts).list().await.unwrap(), vec![]);
}

#[tokio::test]
async fn sftp_known_hosts_mismatch_and_unknown_host() {
    let server = SftpServer::start(true).await;
    let other = PrivateKey::random(&mut russh::keys::key::safe_rng(), Algorithm::Ed25519).unwrap();
    let changed = server.dir().join("known_hosts_changed");
    std::fs::write(
        &changed,
        format!(
            "[127.0.0.1]:{} {}\n",
            server.port,
            other.public_key().to_openssh().unwrap()
        ),
    )
    .unwrap();
    let unknown = server.dir().join("known_hosts_unknown");
    std::fs::write(
        &unknown,
        format!("otherhost {}\n", other.public_key().to_openssh().unwrap()),
    )
    .unwrap();
    for (path, expect) in [(changed, "differs"), (unknown, "is not in")] {
        let opts = FolderOptions {
            password: Some(PASSWORD.into()),
            known_hosts: Some(path),
            ..FolderOptions::default()
        };
        let err = folder(&server.url("/"), opts).list().await.unwrap_err();
        match &err {
            FolderError::HostKey { reason, .. } => assert!(reason.contains(expect), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn sftp_requires_a_host_key_check() {
    let server = SftpServer::start(true).await;
    let opts = FolderOptions {
        password: Some(PASSWORD.into()),
        ..FolderOptions::default()
    };
    let err = folder(&server.url("/"), opts).list().await.unwrap_err();
    assert!(matches!(err, FolderError::Config { .. }), "{err:?}");
    assert!(!err.is_retryable());

    // Explicitly insecure works (tests, first contact).
    let opts = FolderOptions {
        password: Some(PASSWORD.into()),
        insecure_skip_host_key: true,
        ..FolderOptions::default()
    };
    assert_eq!(folder(&server.url("/"), opts).list().await.unwrap(), vec![]);
}

#[tokio::test]
async fn sftp_wrong_password_is_a_retryable_connect_error() {
    let server = SftpServer::start(true).await;
    let opts = FolderOptions {
        password: Some("wrong password".into()),
        ..password_opts(&server)
    };
    let f = folder(&server.url("/"), opts);
    for _ in 0..2 {
        let err = f.list().await.unwrap_err();
        assert!(matches!(err, FolderError::Connect { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(err.to_string().contains(USER), "{err}");
        assert!(!err.to_string().contains("wrong password"), "{err}");
    }
}

#[tokio::test]
async fn sftp_reconnects_after_server_restart() {
    let mut server = SftpServer::start(true).await;
    let opts = FolderOptions {
        connect_timeout: Duration::from_secs(3),
        io_timeout: Duration::from_secs(3),
        ..password_opts(&server)
    };
    let f = folder(&server.url("/"), opts);
    f.write_atomic("a.gdt", b"a", false).await.unwrap();

    server.restart().await;
    assert_eq!(f.list().await.unwrap()[0].name, "a.gdt");
    server.restart().await;
    f.write_atomic("b.gdt", b"b", false).await.unwrap();
    server.restart().await;
    assert_eq!(f.read("b.gdt").await.unwrap(), b"b");

    server.stop();
    let started = Instant::now();
    let err = f.list().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
