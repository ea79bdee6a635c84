//! A real FTP/FTPS server for the tests: Python's pyftpdlib in a child process,
//! serving a temporary directory on a free loopback port.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::TestPki;

/// How long starting the server may take.
const WAIT: Duration = Duration::from_secs(15);

pub const USER: &str = "medrelay";
pub const PASSWORD: &str = "s3cret pass";

const SCRIPT: &str = r#"
import logging, sys, time
try:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.servers import FTPServer
except ImportError as e:
    sys.exit("pyftpdlib is missing (%s): python3 -m pip install pyftpdlib==2.2.0 pyopenssl" % e)
user, password, root, port, cert, key, log = sys.argv[1:8]
logging.basicConfig(filename=log, level=logging.INFO)
authorizer = DummyAuthorizer()
authorizer.add_user(user, password, root, perm="elradfmwMT")
if cert:
    from pyftpdlib.handlers import TLS_FTPHandler as Handler
    Handler.certfile = cert
    Handler.keyfile = key
    Handler.tls_control_required = True
    Handler.tls_data_required = True
else:
    from pyftpdlib.handlers import FTPHandler as Handler
Handler.authorizer = authorizer
Handler.banner = "medrelay test server"
# On a restart the port may still be held for a moment: retry binding.
deadline = time.time() + 10
while True:
    try:
        server = FTPServer(("127.0.0.1", int(port)), Handler)
        break
    except OSError:
        if time.time() > deadline:
            raise
        time.sleep(0.05)
print(server.address[1], flush=True)
server.serve_forever()
"#;

pub struct FtpServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    tls: Option<(PathBuf, PathBuf)>,
}

impl FtpServer {
    /// Starts a server on a free port; with `pki`, FTPS (explicit TLS, required on
    /// control and data connections) with `pki`'s server certificate, which
    /// clients trust through `pki.ca`.
    pub fn start(pki: Option<&TestPki>) -> FtpServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let mut server = FtpServer {
            child: None,
            port: 0,
            dir,
            tls: pki.map(|p| (p.server_cert.clone(), p.server_key.clone())),
        };
        server.spawn(0);
        server
    }

    /// The directory the FTP user sees as `/`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn spawn(&mut self, port: u16) {
        let stderr_path = self.dir.path().join("stderr.txt");
        let log_path = self.dir.path().join("server.log");
        let (cert, key) = match &self.tls {
            Some((c, k)) => (path_arg(c), path_arg(k)),
            None => (String::new(), String::new()),
        };
        let mut child = Command::new(python())
            .arg("-c")
            .arg(SCRIPT)
            .args([USER, PASSWORD])
            .arg(self.root())
            .arg(port.to_string())
            .args([cert, key])
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start python3 ({e}): the FTP tests need python3 with pyftpdlib \
                     (python3 -m pip install pyftpdlib==2.2.0 pyopenssl)"
                )
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(WAIT).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the FTP test server did not start: {}\n(the FTP tests need python3 with \
                 pyftpdlib: python3 -m pip install pyftpdlib==2.2.0 pyopenssl)",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        };
        wait_for_port(port);
        self.port = port;
        self.child = Some(child);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port);
    }

    /// Freezes (SIGSTOP) or thaws (SIGCONT) the server process: connections stay
    /// open but nothing is answered.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{USER}@127.0.0.1:{}/{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A frozen server would not die from SIGKILL's point of view either way,
            // but make sure it can be reaped.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
    }
}

/// The Python interpreter itself: `python3` may be a wrapper (pyenv's shim runs
/// Python as its child), and killing a wrapper would leave the server running.
fn python() -> &'static Path {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run python3 ({e}): the FTP tests need python3 with pyftpdlib \
                     (python3 -m pip install pyftpdlib==2.2.0 pyopenssl)"
                )
            });
        let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && !exe.is_empty(),
            "python3 does not run"
        );
        PathBuf::from(exe)
    })
}

fn path_arg(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn wait_for_port(port: u16) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "FTP test server not accepting on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
