//! Local folders: every operation on a real temporary directory.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{HOSTILE, WAIT, names_on_disk, temp_files};
use medrelay_folder::{Folder, FolderError, FolderOptions, FolderSpec};

fn local(dir: &Path) -> Folder {
    Folder::new(
        FolderSpec::parse(dir.to_str().unwrap()).unwrap(),
        FolderOptions::default(),
    )
}

#[tokio::test]
async fn list_shows_regular_visible_files_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("b.hl7"), b"MSH|").unwrap();
    std::fs::write(dir.join("a.gdt"), b"0123456").unwrap();
    std::fs::write(dir.join(".a.gdt.1234.tmp"), b"partial").unwrap();
    std::fs::create_dir(dir.join("archive")).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(dir.join("a.gdt"), dir.join("link.gdt")).unwrap();
        std::os::unix::fs::symlink(dir.join("missing"), dir.join("dangling.gdt")).unwrap();
        std::os::unix::fs::symlink(dir.join("archive"), dir.join("dirlink")).unwrap();
    }
    let entries = local(dir).list().await.unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    #[cfg(unix)]
    assert_eq!(names, ["a.gdt", "b.hl7", "link.gdt"]);
    #[cfg(not(unix))]
    assert_eq!(names, ["a.gdt", "b.hl7"]);
    assert_eq!(entries[0].size, 7);
    assert!(entries[0].modified.is_some());
}

#[tokio::test]
async fn read_exists_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = local(tmp.path());
    std::fs::write(tmp.path().join("a.gdt"), b"content").unwrap();
    assert_eq!(folder.read("a.gdt").await.unwrap(), b"content");
    assert!(folder.exists("a.gdt").await.unwrap());
    assert!(!folder.exists("b.gdt").await.unwrap());
    let err = folder.read("b.gdt").await.unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err:?}");
    assert!(!err.is_retryable());
    folder.remove("a.gdt").await.unwrap();
    assert!(!tmp.path().join("a.gdt").exists());
    let err = folder.remove("a.gdt").await.unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_folder_is_a_retryable_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = local(&tmp.path().join("not-mounted"));
    let err = folder.list().await.unwrap_err();
    assert!(matches!(err, FolderError::Io { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("not-mounted"), "{err}");
}

#[tokio::test]
async fn write_atomic_overwrite_rules_and_no_temp_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let folder = local(dir);
    folder.write_atomic("r.gdt", b"one", false).await.unwrap();
    assert_eq!(std::fs::read(dir.join("r.gdt")).unwrap(), b"one");

    let err = folder
        .write_atomic("r.gdt", b"two", false)
        .await
        .unwrap_err();
    assert!(matches!(err, FolderError::Exists { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(std::fs::read(dir.join("r.gdt")).unwrap(), b"one");

    folder.write_atomic("r.gdt", b"three", true).await.unwrap();
    assert_eq!(std::fs::read(dir.join("r.gdt")).unwrap(), b"three");
    assert_eq!(names_on_disk(dir), ["r.gdt"]);

    // A long name still gets a temporary name within the file name limit.
    let long = "x".repeat(250);
    folder.write_atomic(&long, b"long", false).await.unwrap();
    assert_eq!(std::fs::read(dir.join(&long)).unwrap(), b"long");
    assert!(temp_files(dir).is_empty());
}

#[tokio::test]
async fn write_atomic_loses_races_cleanly() {
    // Many writers race for one name without overwrite: exactly one wins, the
    // others get Exists, and no temporary file survives.
    let tmp = tempfile::tempdir().unwrap();
    let folder = local(tmp.path());
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let folder = folder.clone();
        tasks.push(tokio::spawn(async move {
            folder.write_atomic("race.gdt", &[i; 1000], false).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(FolderError::Exists { .. }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(names_on_disk(tmp.path()), ["race.gdt"]);
    let content = std::fs::read(tmp.path().join("race.gdt")).unwrap();
    assert!(content.len() == 1000 && content.iter().all(|b| *b == content[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_partial_file() {
    const SIZE: usize = 512 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let folder = local(&dir);
    let stop = Arc::new(AtomicBool::new(false));
    let complete_reads = Arc::new(AtomicUsize::new(0));

    // A reader on its own thread, reading the target as fast as it can.
    let reader = {
        let (stop, complete_reads, path) =
            (stop.clone(), complete_reads.clone(), dir.join("big.pdf"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        assert_eq!(bytes.len(), SIZE, "partial file seen");
                        assert!(bytes.iter().all(|b| *b == bytes[0]), "mixed content seen");
                        complete_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };

    for round in 0..40u8 {
        folder
            .write_atomic("big.pdf", &vec![round; SIZE], true)
            .await
            .unwrap();
    }
    // Let the reader see the final version at least a few times.
    common::wait_until("reads of the written file", WAIT, || {
        complete_reads.load(Ordering::Relaxed) >= 3
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader saw a partial file");
    assert_eq!(
        std::fs::read(dir.join("big.pdf")).unwrap(),
        vec![39u8; SIZE]
    );
    assert!(temp_files(&dir).is_empty());
}

#[tokio::test]
async fn move_to_never_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("in");
    std::fs::create_dir(dir).unwrap();
    let folder = local(dir);
    for i in 0..3 {
        std::fs::write(dir.join("in.gdt"), format!("v{i}")).unwrap();
        let name = folder.move_to("in.gdt", "archive", "in.gdt").await.unwrap();
        let expected = ["in.gdt", "in.gdt.1", "in.gdt.2"][i];
        assert_eq!(name, expected);
        assert_eq!(
            std::fs::read_to_string(dir.join("archive").join(expected)).unwrap(),
            format!("v{i}")
        );
    }
    assert!(!dir.join("in.gdt").exists());

    // A directory in the way counts as taken.
    std::fs::create_dir(dir.join("archive/x.gdt")).unwrap();
    std::fs::write(dir.join("x.gdt"), b"x").unwrap();
    assert_eq!(
        folder.move_to("x.gdt", "archive", "x.gdt").await.unwrap(),
        "x.gdt.1"
    );

    // Absolute destination, nested and created on demand.
    let other = tempfile::tempdir().unwrap();
    let dest = other.path().join("done/2024");
    std::fs::write(dir.join("y.gdt"), b"y").unwrap();
    let name = folder
        .move_to("y.gdt", dest.to_str().unwrap(), "y-final.gdt")
        .await
        .unwrap();
    assert_eq!(name, "y-final.gdt");
    assert_eq!(std::fs::read(dest.join("y-final.gdt")).unwrap(), b"y");

    // Relative with "..": a sibling folder.
    std::fs::write(dir.join("z.gdt"), b"z").unwrap();
    folder
        .move_to("z.gdt", "../sibling", "z.gdt")
        .await
        .unwrap();
    assert!(tmp.path().join("sibling/z.gdt").exists());

    let err = folder
        .move_to("gone.gdt", "archive", "gone.gdt")
        .await
        .unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn concurrent_moves_to_one_name_get_distinct_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let folder = local(dir);
    for i in 0..20 {
        std::fs::write(dir.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..20 {
        let folder = folder.clone();
        tasks.push(tokio::spawn(async move {
            folder
                .move_to(&format!("f{i}"), "archive", "same.gdt")
                .await
        }));
    }
    let mut names = Vec::new();
    for t in tasks {
        names.push(t.await.unwrap().unwrap());
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 20);
    let mut contents: Vec<String> = names
        .iter()
        .map(|n| std::fs::read_to_string(dir.join("archive").join(n)).unwrap())
        .collect();
    contents.sort_by_key(|c| c.parse::<u32>().unwrap());
    assert_eq!(contents, (0..20).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test]
async fn write_into_creates_the_folder_and_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = local(tmp.path());
    folder
        .write_into("errors", "a.gdt.error.txt", b"first")
        .await
        .unwrap();
    folder
        .write_into("errors", "a.gdt.error.txt", b"second")
        .await
        .unwrap();
    let errors = tmp.path().join("errors");
    assert_eq!(
        std::fs::read(errors.join("a.gdt.error.txt")).unwrap(),
        b"second"
    );
    assert_eq!(names_on_disk(&errors), ["a.gdt.error.txt"]);
}

#[tokio::test]
async fn hostile_names_are_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let inner = tmp.path().join("in");
    std::fs::create_dir(&inner).unwrap();
    std::fs::write(tmp.path().join("escape"), b"outside").unwrap();
    std::fs::write(inner.join("x"), b"x").unwrap();
    let folder = local(&inner);
    for name in HOSTILE {
        let check = |r: Result<(), FolderError>| match r {
            Err(e @ FolderError::InvalidName { .. }) => assert!(!e.is_retryable()),
            other => panic!("{name:?}: {other:?}"),
        };
        check(folder.read(name).await.map(drop));
        check(folder.exists(name).await.map(drop));
        check(folder.write_atomic(name, b"x", true).await);
        check(folder.remove(name).await);
        check(folder.move_to(name, "archive", "x").await.map(drop));
        check(folder.move_to("x", "archive", name).await.map(drop));
        check(folder.write_into("errors", name, b"x").await);
    }
    assert!(matches!(
        folder.write_into("a\nb", "x", b"x").await,
        Err(FolderError::InvalidName { .. })
    ));
    assert_eq!(
        std::fs::read(tmp.path().join("escape")).unwrap(),
        b"outside"
    );
    assert_eq!(names_on_disk(&inner), ["x"]);
}

#[tokio::test]
async fn watch_wakes_up_on_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = local(tmp.path());
    let mut rx = folder.watch().expect("local folders can be watched");

    std::fs::write(tmp.path().join("new.gdt"), b"order").unwrap();
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no wake-up after a file was created")
        .expect("watcher gone");

    // Our own atomic write is a change too.
    while rx.try_recv().is_ok() {}
    folder
        .write_atomic("result.gdt", b"r", false)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("no wake-up after write_atomic")
        .expect("watcher gone");

    // Dropping the receiver stops the watcher; writing afterwards is harmless.
    drop(rx);
    std::fs::write(tmp.path().join("later.gdt"), b"x").unwrap();
}

#[tokio::test]
async fn reading_does_not_wake_the_watcher() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("a.gdt"), b"order").unwrap();
    let folder = local(tmp.path());
    let mut rx = folder.watch().unwrap();
    for _ in 0..5 {
        folder.list().await.unwrap();
        folder.read("a.gdt").await.unwrap();
    }
    // Then a real change: the first wake-up must come from it. Anything before
    // would have been a wake-up caused by reading.
    assert!(rx.try_recv().is_err(), "reading woke the watcher");
    std::fs::write(tmp.path().join("b.gdt"), b"x").unwrap();
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn watch_is_none_for_remote_and_missing_folders() {
    let remote = Folder::new(
        FolderSpec::parse("ftp://u@127.0.0.1:1/in").unwrap(),
        FolderOptions::default(),
    );
    assert!(remote.watch().is_none());
    let missing = local(Path::new("/nonexistent/medrelay/folder"));
    assert!(missing.watch().is_none());
}

#[tokio::test]
async fn io_timeout_bounds_local_operations() {
    // A zero time limit cannot be met: the operation reports a retryable time-out
    // instead of waiting.
    let tmp = tempfile::tempdir().unwrap();
    let folder = Folder::new(
        FolderSpec::parse(tmp.path().to_str().unwrap()).unwrap(),
        FolderOptions {
            io_timeout: Duration::ZERO,
            ..FolderOptions::default()
        },
    );
    match folder.list().await {
        Err(e @ FolderError::Timeout { .. }) => assert!(e.is_retryable()),
        // The blocking pool may have answered within the first poll.
        Ok(_) => {}
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn options_debug_hides_secrets() {
    let opts = FolderOptions {
        password: Some("hunter2".into()),
        key_passphrase: Some("pass phrase".into()),
        ..FolderOptions::default()
    };
    let s = format!("{opts:?}");
    assert!(!s.contains("hunter2") && !s.contains("pass phrase"), "{s}");
    assert_eq!(
        FolderOptions::default().connect_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(FolderOptions::default().io_timeout, Duration::from_secs(30));
}
