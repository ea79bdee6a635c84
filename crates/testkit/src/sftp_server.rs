//! A real SFTP server for the tests, in process: russh (SSH, password and public
//! key login) with russh-sftp serving a temporary directory, on a free loopback
//! port. Renames follow SFTP v3 (refused onto an existing file, like OpenSSH);
//! `posix-rename@openssh.com` and `fsync@openssh.com` can be switched off to test
//! servers without them.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};
use russh_sftp::protocol::{
    Attrs, Data, File as SftpFile, FileAttributes, Handle, Name, OpenFlags, Packet, Status,
    StatusCode, Version,
};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;

pub const USER: &str = "medrelay";
pub const PASSWORD: &str = "s3cret pass";

/// How long a restart may wait for the old listener to let go of the port.
const WAIT: Duration = Duration::from_secs(15);

pub struct SftpServer {
    pub port: u16,
    pub host_key: PrivateKey,
    /// The client's key, written to `user_key_path` (OpenSSH format).
    pub user_key_path: PathBuf,
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

struct Shared {
    root: PathBuf,
    authorized: PublicKey,
    posix_rename: bool,
}

impl SftpServer {
    pub async fn start(posix_rename: bool) -> SftpServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let mut rng = russh::keys::key::safe_rng();
        let host_key = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
        let user_key = PrivateKey::random(&mut rng, Algorithm::Ed25519).unwrap();
        let user_key_path = dir.path().join("id_ed25519");
        fs::write(
            &user_key_path,
            user_key.to_openssh(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let mut server = SftpServer {
            port: 0,
            host_key,
            user_key_path,
            shared: Arc::new(Shared {
                root,
                authorized: user_key.public_key().clone(),
                posix_rename,
            }),
            dir,
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        server.listen(0).await;
        server
    }

    pub fn root(&self) -> PathBuf {
        self.shared.root.clone()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        self.host_key
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("sftp://{USER}@127.0.0.1:{}{path}", self.port)
    }

    async fn listen(&mut self, port: u16) {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        self.port = listener.local_addr().unwrap().port();
        let config = Arc::new(russh::server::Config {
            keys: vec![self.host_key.clone()],
            auth_rejection_time: Duration::from_millis(10),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        });
        let shared = self.shared.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    return;
                };
                let handler = SshHandler {
                    shared: shared.clone(),
                    channels: HashMap::new(),
                    peer,
                };
                let config = config.clone();
                // russh and russh-sftp run sessions in tasks of their own; a proxy
                // task between the socket and the session is what stop() can abort
                // to cut the connection like a dying server would.
                let (mut outer, inner) = tokio::io::duplex(256 * 1024);
                let proxy = tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut outer).await;
                });
                tasks.lock().unwrap().push(proxy.abort_handle());
                tokio::spawn(async move {
                    if let Ok(running) = russh::server::run_stream(config, inner, handler).await {
                        let _ = running.await;
                    }
                });
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Stops and listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        let port = self.port;
        // The aborted listener closes asynchronously; retry binding briefly.
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "port {port} stays taken"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.listen(port).await;
    }
}

impl Drop for SftpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct SshHandler {
    shared: Arc<Shared>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    #[allow(dead_code)]
    peer: SocketAddr,
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(if user == USER && password == PASSWORD {
            Auth::Accept
        } else {
            Auth::reject()
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if user == USER && *offer.public_key == self.shared.authorized {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if user == USER && *key.public_key == self.shared.authorized {
                Auth::Accept
            } else {
                Auth::reject()
            },
        )
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.close(channel)?;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match (name, self.channels.remove(&channel_id)) {
            ("sftp", Some(channel)) => {
                session.channel_success(channel_id)?;
                let fs = FsHandler {
                    shared: self.shared.clone(),
                    handles: HashMap::new(),
                    next: 0,
                };
                russh_sftp::server::run(channel.into_stream(), fs).await;
            }
            _ => session.channel_failure(channel_id)?,
        }
        Ok(())
    }
}

enum Open {
    File(File),
    Dir(Option<Vec<SftpFile>>),
}

struct FsHandler {
    shared: Arc<Shared>,
    handles: HashMap<String, Open>,
    next: u64,
}

fn ok(id: u32) -> Status {
    Status {
        id,
        status_code: StatusCode::Ok,
        error_message: "Ok".into(),
        language_tag: "en-US".into(),
    }
}

fn code(e: std::io::Error) -> StatusCode {
    match e.kind() {
        std::io::ErrorKind::NotFound => StatusCode::NoSuchFile,
        std::io::ErrorKind::PermissionDenied => StatusCode::PermissionDenied,
        _ => StatusCode::Failure,
    }
}

impl FsHandler {
    /// Maps an SFTP path to the served directory; relative paths start in it too
    /// (it is the user's home). `..` is refused.
    fn path(&self, p: &str) -> Result<PathBuf, StatusCode> {
        let mut out = self.shared.root.clone();
        for c in Path::new(p).components() {
            match c {
                Component::Normal(s) => out.push(s),
                Component::RootDir | Component::CurDir => {}
                _ => return Err(StatusCode::PermissionDenied),
            }
        }
        Ok(out)
    }

    fn handle(&mut self, open: Open) -> String {
        self.next += 1;
        let h = self.next.to_string();
        self.handles.insert(h.clone(), open);
        h
    }
}

impl russh_sftp::server::Handler for FsHandler {
    type Error = StatusCode;

    fn unimplemented(&self) -> Self::Error {
        StatusCode::OpUnsupported
    }

    async fn init(
        &mut self,
        _version: u32,
        _extensions: HashMap<String, String>,
    ) -> Result<Version, Self::Error> {
        let mut v = Version::new();
        if self.shared.posix_rename {
            v.extensions
                .insert("posix-rename@openssh.com".into(), "1".into());
            v.extensions.insert("fsync@openssh.com".into(), "1".into());
        }
        Ok(v)
    }

    async fn open(
        &mut self,
        id: u32,
        filename: String,
        pflags: OpenFlags,
        _attrs: FileAttributes,
    ) -> Result<Handle, Self::Error> {
        let path = self.path(&filename)?;
        let options: OpenOptions = pflags.into();
        let file = options.open(&path).map_err(code)?;
        Ok(Handle {
            id,
            handle: self.handle(Open::File(file)),
        })
    }

    async fn close(&mut self, id: u32, handle: String) -> Result<Status, Self::Error> {
        self.handles.remove(&handle).ok_or(StatusCode::Failure)?;
        Ok(ok(id))
    }

    async fn read(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        len: u32,
    ) -> Result<Data, Self::Error> {
        let Some(Open::File(file)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure);
        };
        file.seek(SeekFrom::Start(offset)).map_err(code)?;
        let mut data = vec![0; len as usize];
        let n = file.read(&mut data).map_err(code)?;
        if n == 0 {
            return Err(StatusCode::Eof);
        }
        data.truncate(n);
        Ok(Data { id, data })
    }

    async fn write(
        &mut self,
        id: u32,
        handle: String,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<Status, Self::Error> {
        let Some(Open::File(file)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure);
        };
        file.seek(SeekFrom::Start(offset)).map_err(code)?;
        file.write_all(&data).map_err(code)?;
        Ok(ok(id))
    }

    async fn lstat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = fs::symlink_metadata(self.path(&path)?).map_err(code)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn stat(&mut self, id: u32, path: String) -> Result<Attrs, Self::Error> {
        let meta = fs::metadata(self.path(&path)?).map_err(code)?;
        Ok(Attrs {
            id,
            attrs: FileAttributes::from(&meta),
        })
    }

    async fn opendir(&mut self, id: u32, path: String) -> Result<Handle, Self::Error> {
        let dir = self.path(&path)?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir).map_err(code)? {
            let entry = entry.map_err(code)?;
            let meta = fs::symlink_metadata(entry.path()).map_err(code)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            files.push(SftpFile::new(name, FileAttributes::from(&meta)));
        }
        Ok(Handle {
            id,
            handle: self.handle(Open::Dir(Some(files))),
        })
    }

    async fn readdir(&mut self, id: u32, handle: String) -> Result<Name, Self::Error> {
        let Some(Open::Dir(files)) = self.handles.get_mut(&handle) else {
            return Err(StatusCode::Failure);
        };
        match files.take() {
            Some(files) => Ok(Name { id, files }),
            None => Err(StatusCode::Eof),
        }
    }

    async fn remove(&mut self, id: u32, filename: String) -> Result<Status, Self::Error> {
        fs::remove_file(self.path(&filename)?).map_err(code)?;
        Ok(ok(id))
    }

    async fn mkdir(
        &mut self,
        id: u32,
        path: String,
        _attrs: FileAttributes,
    ) -> Result<Status, Self::Error> {
        fs::create_dir(self.path(&path)?).map_err(code)?;
        Ok(ok(id))
    }

    async fn realpath(&mut self, id: u32, path: String) -> Result<Name, Self::Error> {
        let joined = Path::new("/").join(path.trim_start_matches('/'));
        Ok(Name {
            id,
            files: vec![SftpFile::dummy(joined.to_string_lossy())],
        })
    }

    async fn rename(
        &mut self,
        id: u32,
        oldpath: String,
        newpath: String,
    ) -> Result<Status, Self::Error> {
        let (from, to) = (self.path(&oldpath)?, self.path(&newpath)?);
        // SFTP v3: never onto an existing file.
        if fs::symlink_metadata(&to).is_ok() {
            return Err(StatusCode::Failure);
        }
        fs::rename(from, to).map_err(code)?;
        Ok(ok(id))
    }

    async fn extended(
        &mut self,
        id: u32,
        request: String,
        data: Vec<u8>,
    ) -> Result<Packet, Self::Error> {
        match request.as_str() {
            "posix-rename@openssh.com" if self.shared.posix_rename => {
                let (from, rest) = ssh_string(&data).ok_or(StatusCode::BadMessage)?;
                let (to, _) = ssh_string(rest).ok_or(StatusCode::BadMessage)?;
                let (from, to) = (self.path(from)?, self.path(to)?);
                fs::rename(from, to).map_err(code)?;
                Ok(Packet::Status(ok(id)))
            }
            "fsync@openssh.com" if self.shared.posix_rename => {
                let (handle, _) = ssh_string(&data).ok_or(StatusCode::BadMessage)?;
                let Some(Open::File(file)) = self.handles.get(handle) else {
                    return Err(StatusCode::Failure);
                };
                file.sync_all().map_err(code)?;
                Ok(Packet::Status(ok(id)))
            }
            _ => Err(StatusCode::OpUnsupported),
        }
    }
}

fn ssh_string(data: &[u8]) -> Option<(&str, &[u8])> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let s = std::str::from_utf8(data.get(4..4 + len)?).ok()?;
    Some((s, &data[4 + len..]))
}
