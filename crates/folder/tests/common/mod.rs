//! Shared by the integration tests: waiting with deadlines and the checks every
//! remote folder must pass. The FTP/FTPS and SFTP test servers and the test
//! certificates come from `medrelay_testkit`.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use medrelay_folder::{Folder, FolderError};

/// How long a test waits for something that should happen quickly.
pub const WAIT: Duration = Duration::from_secs(15);

/// Polls `cond` until it holds or `limit` passes; panics with `what` then.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Names in `dir` on disk, sorted, including hidden ones.
pub fn names_on_disk(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Temporary files (`.<name>.<random>.tmp`) left in `dir`.
pub fn temp_files(dir: &Path) -> Vec<String> {
    names_on_disk(dir)
        .into_iter()
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

pub const HOSTILE: &[&str] = &[
    "",
    ".",
    "..",
    "../escape",
    "a/b",
    "/etc/passwd",
    "a\\b",
    "a\0b",
    "a\r\nDELE x",
];

/// Every operation on a folder whose files live in `root` on this machine, checked
/// against what is on disk. Used for FTP, FTPS and SFTP alike.
pub async fn exercise(folder: &Folder, root: &Path) {
    // Things list() must leave out.
    std::fs::create_dir(root.join("sub")).unwrap();
    std::fs::write(root.join(".hidden"), b"x").unwrap();
    assert_eq!(folder.list().await.unwrap(), vec![]);

    // write_atomic and list.
    folder
        .write_atomic("b.hl7", b"MSH|^~\\&|B\r", false)
        .await
        .unwrap();
    folder
        .write_atomic("a.gdt", b"01380006310\r\n", false)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.join("a.gdt")).unwrap(),
        b"01380006310\r\n"
    );
    let entries = folder.list().await.unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["a.gdt", "b.hl7"]);
    assert_eq!(entries[0].size, 13);
    let modified = entries[0].modified.expect("modification time");
    let age = std::time::SystemTime::now()
        .duration_since(modified)
        .unwrap_or(Duration::ZERO);
    assert!(
        age < Duration::from_secs(300),
        "modified {modified:?} is off"
    );
    assert!(temp_files(root).is_empty(), "{:?}", names_on_disk(root));

    // read / exists, binary content unchanged (no CR/LF translation).
    let binary: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    folder
        .write_atomic("bin.pdf", &binary, false)
        .await
        .unwrap();
    assert_eq!(folder.read("bin.pdf").await.unwrap(), binary);
    assert_eq!(std::fs::read(root.join("bin.pdf")).unwrap(), binary);
    assert!(folder.exists("a.gdt").await.unwrap());
    assert!(!folder.exists("nope.gdt").await.unwrap());
    assert!(matches!(
        folder.read("nope.gdt").await,
        Err(FolderError::NotFound { .. })
    ));

    // Empty files are files too.
    folder.write_atomic("empty.txt", b"", false).await.unwrap();
    assert_eq!(folder.read("empty.txt").await.unwrap(), b"");
    folder.remove("empty.txt").await.unwrap();

    // No overwrite without asking; no temporary file left behind.
    let err = folder
        .write_atomic("a.gdt", b"other", false)
        .await
        .unwrap_err();
    assert!(matches!(err, FolderError::Exists { .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert_eq!(
        std::fs::read(root.join("a.gdt")).unwrap(),
        b"01380006310\r\n"
    );
    folder
        .write_atomic("a.gdt", b"replaced", true)
        .await
        .unwrap();
    assert_eq!(folder.read("a.gdt").await.unwrap(), b"replaced");
    assert!(temp_files(root).is_empty(), "{:?}", names_on_disk(root));

    // move_to with collisions, creating the destination.
    assert_eq!(
        folder.move_to("a.gdt", "archive", "a.gdt").await.unwrap(),
        "a.gdt"
    );
    folder
        .write_atomic("a.gdt", b"second", false)
        .await
        .unwrap();
    assert_eq!(
        folder.move_to("a.gdt", "archive", "a.gdt").await.unwrap(),
        "a.gdt.1"
    );
    folder.write_atomic("a.gdt", b"third", false).await.unwrap();
    assert_eq!(
        folder.move_to("a.gdt", "archive", "a.gdt").await.unwrap(),
        "a.gdt.2"
    );
    assert_eq!(
        std::fs::read(root.join("archive/a.gdt")).unwrap(),
        b"replaced"
    );
    assert_eq!(
        std::fs::read(root.join("archive/a.gdt.1")).unwrap(),
        b"second"
    );
    assert_eq!(
        std::fs::read(root.join("archive/a.gdt.2")).unwrap(),
        b"third"
    );
    assert!(!root.join("a.gdt").exists());
    // Nested destination, made on demand, and a new name.
    assert_eq!(
        folder
            .move_to("b.hl7", "done/2024", "b-renamed.hl7")
            .await
            .unwrap(),
        "b-renamed.hl7"
    );
    assert!(root.join("done/2024/b-renamed.hl7").is_file());
    let err = folder
        .move_to("gone.gdt", "archive", "gone.gdt")
        .await
        .unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err:?}");

    // write_into: beside a rejected file, replacing an older note.
    folder
        .write_into("errors", "x.gdt.error.txt", b"bad 1")
        .await
        .unwrap();
    folder
        .write_into("errors", "x.gdt.error.txt", b"bad 2")
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(root.join("errors/x.gdt.error.txt")).unwrap(),
        b"bad 2"
    );
    assert!(temp_files(&root.join("errors")).is_empty());

    // remove.
    folder.remove("bin.pdf").await.unwrap();
    assert!(!root.join("bin.pdf").exists());
    let err = folder.remove("bin.pdf").await.unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err:?}");
    assert_eq!(folder.list().await.unwrap(), vec![]);

    // Hostile names never reach the server.
    for name in HOSTILE {
        let check = |r: Result<(), FolderError>| match r {
            Err(FolderError::InvalidName { .. }) => {}
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
    assert!(!root.join("escape").exists());
    assert!(!root.parent().unwrap().join("escape").exists());

    // The folder is usable from clones and from other tasks (futures are Send).
    let clone = folder.clone();
    let listed = tokio::spawn(async move { clone.list().await })
        .await
        .unwrap();
    assert_eq!(listed.unwrap(), vec![]);
}
