//! Where a folder is: [`FolderSpec`], parsed from the configuration string, and
//! the checks on file names and sub-folder paths handed to operations.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::FolderError;

/// The protocol of a remote folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain FTP (`ftp://`).
    Ftp,
    /// FTP with explicit TLS (`ftps://`, `AUTH TLS` on the normal port).
    Ftps,
    /// SFTP over SSH (`sftp://`).
    Sftp,
}

impl Scheme {
    fn name(self) -> &'static str {
        match self {
            Scheme::Ftp => "ftp",
            Scheme::Ftps => "ftps",
            Scheme::Sftp => "sftp",
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Ftp | Scheme::Ftps => 21,
            Scheme::Sftp => 22,
        }
    }
}

/// A remote folder: server, account and directory.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    /// The directory on the server: absolute (`/srv/in`) or relative to the login
    /// directory (`inbox`, or empty for the login directory itself).
    pub(crate) path: String,
}

impl RemoteSpec {
    /// The protocol.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The server's host name or IP address (without brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The port (the protocol's default if the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The user name, if the URL has one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
    /// The directory on the server: absolute, or relative to the login directory
    /// (empty for the login directory itself).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, with brackets around an IPv6 address.
    pub(crate) fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    Remote(RemoteSpec),
}

/// Where a folder is: a local path, or an `ftp://`, `ftps://` or `sftp://` URL.
///
/// Paths in URLs follow curl's reading, which is what administrators know:
///
/// | URL | directory |
/// |---|---|
/// | `ftp://host/inbox` | `inbox` in the login directory |
/// | `ftp://host//srv/inbox`, `ftp://host/%2Fsrv/inbox` | `/srv/inbox` |
/// | `sftp://host/srv/inbox` | `/srv/inbox` |
/// | `sftp://host/~/inbox` | `inbox` in the home directory |
/// | `ftp://host`, `sftp://host` | the login (home) directory |
///
/// User, password and path may be percent-encoded (`%40` for `@`). The password
/// belongs in [`crate::FolderOptions::password`], not in the configured URL; one in
/// the URL is accepted but never shown by [`FolderSpec::display`] or `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct FolderSpec {
    location: Location,
}

impl FolderSpec {
    /// Parses `"/srv/gdt/in"`, `"relative/dir"`, `"file:///srv/in"`,
    /// `"ftp://user@host:21/inbox"`, `"ftps://user@host/inbox"` (explicit TLS) or
    /// `"sftp://user@host:22/inbox"`.
    pub fn parse(s: &str) -> Result<FolderSpec, FolderError> {
        let invalid = |reason: &str| FolderError::InvalidSpec {
            spec: mask_password(s),
            reason: reason.to_owned(),
        };
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err(invalid("empty"));
        }
        if trimmed.contains('\0') {
            return Err(invalid("contains a NUL character"));
        }
        let Some((scheme, rest)) = split_scheme(trimmed) else {
            return Ok(FolderSpec {
                location: Location::Local(PathBuf::from(trimmed)),
            });
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "file" => return parse_file_url(rest).map_err(|r| invalid(&r)),
            "ftp" => Scheme::Ftp,
            "ftps" | "ftpes" => Scheme::Ftps,
            "sftp" => Scheme::Sftp,
            other => {
                return Err(invalid(&format!(
                    "unsupported scheme {other:?} (use a path, file://, ftp://, ftps:// or sftp://)"
                )));
            }
        };
        parse_remote(scheme, rest)
            .map(|remote| FolderSpec {
                location: Location::Remote(remote),
            })
            .map_err(|r| invalid(&r))
    }

    /// Whether this is a folder on the local file system (including mounted shares).
    pub fn is_local(&self) -> bool {
        matches!(self.location, Location::Local(_))
    }

    /// The local directory, for local folders.
    pub fn local_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    /// The server and directory, for remote folders.
    pub fn remote(&self) -> Option<&RemoteSpec> {
        match &self.location {
            Location::Local(_) => None,
            Location::Remote(r) => Some(r),
        }
    }

    /// For logs and errors: the path, or the URL without any password.
    pub fn display(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::Remote(r) => {
                let user = r
                    .user
                    .as_deref()
                    .map(|u| format!("{}@", encode_userinfo(u)))
                    .unwrap_or_default();
                let path = match (r.scheme, r.path.as_str()) {
                    (_, "") => String::new(),
                    (Scheme::Sftp, p) if p.starts_with('/') => p.to_owned(),
                    (Scheme::Sftp, p) => format!("/~/{p}"),
                    // FTP: "/inbox" is relative, "//srv" absolute.
                    (_, p) => format!("/{p}"),
                };
                format!("{}://{}{}{}", r.scheme.name(), user, r.host_port(), path)
            }
        }
    }

    pub(crate) fn url_password(&self) -> Option<&str> {
        match &self.location {
            Location::Remote(r) => r.password.as_deref(),
            Location::Local(_) => None,
        }
    }
}

impl FromStr for FolderSpec {
    type Err = FolderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FolderSpec::parse(s)
    }
}

impl fmt::Display for FolderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl fmt::Debug for FolderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password: Debug output ends up in logs.
        write!(f, "FolderSpec({:?})", self.display())
    }
}

impl fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("path", &self.path)
            .finish()
    }
}

/// `scheme://rest` → `(scheme, rest)`. A Windows path like `C:\in` has no `//`
/// and stays a path.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some((scheme, rest))
}

fn parse_file_url(rest: &str) -> Result<FolderSpec, String> {
    // file:///srv/in or file://localhost/srv/in
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
        return Err(format!(
            "file:// URL with host {host:?}: only local paths (file:///path) are supported; mount the share"
        ));
    }
    if path.is_empty() {
        return Err("file:// URL without a path".into());
    }
    let path = percent_decode(path)?;
    Ok(FolderSpec {
        location: Location::Local(PathBuf::from(path)),
    })
}

fn parse_remote(scheme: Scheme, rest: &str) -> Result<RemoteSpec, String> {
    let (authority, raw_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    // The last '@' separates the user info: an unencoded '@' in a user name (an
    // e-mail address as FTP login) still parses.
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let u = percent_decode(u)?;
            let p = p.map(percent_decode).transpose()?;
            if u.is_empty() {
                return Err("empty user name".into());
            }
            (Some(u), p)
        }
    };
    let (host, port) = split_host_port(hostport)?;
    let port = port.unwrap_or(scheme.default_port());
    let decoded = percent_decode(raw_path)?;
    if decoded.chars().any(|c| c.is_control()) {
        return Err("control characters in the path".into());
    }
    let path = remote_dir(scheme, &decoded);
    if scheme == Scheme::Sftp && user.is_none() {
        return Err("an sftp:// URL needs a user (sftp://user@host/path)".into());
    }
    Ok(RemoteSpec {
        scheme,
        host,
        port,
        user,
        password,
        path,
    })
}

/// The directory to use on the server for a decoded URL path (see [`FolderSpec`]).
fn remote_dir(scheme: Scheme, decoded: &str) -> String {
    let trimmed = |p: &str| -> String {
        let p = p.trim_end_matches('/');
        if p.is_empty() {
            String::new()
        } else {
            p.to_owned()
        }
    };
    match scheme {
        Scheme::Sftp => {
            if decoded.is_empty() || decoded == "/~" || decoded == "/~/" {
                String::new()
            } else if let Some(rel) = decoded.strip_prefix("/~/") {
                trimmed(rel.trim_start_matches('/'))
            } else {
                let p = trimmed(decoded);
                if p.is_empty() { "/".to_owned() } else { p }
            }
        }
        Scheme::Ftp | Scheme::Ftps => {
            // "/inbox" is relative to the login directory; "//srv" and "/%2Fsrv"
            // (decoded to "//srv") are absolute.
            let Some(after) = decoded.strip_prefix('/') else {
                return trimmed(decoded);
            };
            if after.starts_with('/') {
                let p = trimmed(after);
                if p.is_empty() { "/".to_owned() } else { p }
            } else {
                trimmed(after)
            }
        }
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    if hostport.is_empty() {
        return Err("no host".into());
    }
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in IPv6 address")?;
        let host = &rest[..end];
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after IPv6 address")?),
        };
        (host, port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\\' | '@'))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(format!("invalid port {p:?}")),
            Ok(n) => Some(n),
        },
    };
    Ok((host.to_owned(), port))
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("invalid percent-encoding in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(out).map_err(|_| "percent-encoding is not UTF-8".to_owned())?;
    if decoded.contains('\0') {
        return Err("contains a NUL character".into());
    }
    Ok(decoded)
}

fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '@' | ':' | '/' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The specification string with any `user:password@` password replaced by `***`,
/// for error messages about a string that did not parse.
fn mask_password(s: &str) -> String {
    let Some((scheme, rest)) = split_scheme(s.trim()) else {
        return s.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return s.to_owned();
    };
    let userinfo = &authority[..at];
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => s.to_owned(),
    }
}

/// Checks that `name` is a plain file name: non-empty, no path separators, not `.`
/// or `..`, no NUL or other control characters (a CR/LF would end an FTP command
/// early and start another).
pub(crate) fn check_name(name: &str) -> Result<(), FolderError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are not file names")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a path separator")
    } else if name.contains('\0') {
        Some("contains a NUL character")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.len() > 255 {
        Some("longer than 255 bytes")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FolderError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks a destination directory from the configuration (`archive`,
/// `../done`, `/srv/done`). Unlike file names it may contain `/` and `..`: it is
/// configured by an administrator, not taken from a file.
pub(crate) fn check_dir(dir: &str) -> Result<(), FolderError> {
    let reason = if dir.trim().is_empty() {
        Some("empty")
    } else if dir.contains('\0') {
        Some("contains a NUL character")
    } else if dir.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(FolderError::InvalidName {
            name: dir.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Joins a remote directory and a relative path with `/`; an empty base is the
/// login directory.
pub(crate) fn remote_join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') || base.is_empty() {
        rel.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{rel}")
    } else {
        format!("{base}/{rel}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> RemoteSpec {
        FolderSpec::parse(s).unwrap().remote().unwrap().clone()
    }

    #[test]
    fn local_paths() {
        for (s, p) in [
            ("/srv/gdt/in", "/srv/gdt/in"),
            ("relative/dir", "relative/dir"),
            ("file:///srv/in", "/srv/in"),
            ("file://localhost/srv/a%20b", "/srv/a b"),
            (r"C:\gdt\in", r"C:\gdt\in"),
        ] {
            let spec = FolderSpec::parse(s).unwrap();
            assert!(spec.is_local(), "{s}");
            assert_eq!(spec.local_path().unwrap(), Path::new(p), "{s}");
        }
        assert!(FolderSpec::parse("file://server/share").is_err());
        assert!(FolderSpec::parse("").is_err());
        assert!(FolderSpec::parse("http://x/y").is_err());
    }

    #[test]
    fn remote_urls() {
        let r = remote("ftp://user@host:2121/inbox");
        assert_eq!(
            (
                r.scheme,
                r.host.as_str(),
                r.port,
                r.user.as_deref(),
                r.path.as_str()
            ),
            (Scheme::Ftp, "host", 2121, Some("user"), "inbox")
        );
        let r = remote("ftps://user@host/inbox/");
        assert_eq!(
            (r.scheme, r.port, r.path.as_str()),
            (Scheme::Ftps, 21, "inbox")
        );
        assert_eq!(remote("ftp://h//srv/in").path, "/srv/in");
        assert_eq!(remote("ftp://h/%2Fsrv/in").path, "/srv/in");
        assert_eq!(remote("ftp://h").path, "");
        assert_eq!(remote("ftp://h/").path, "");
        assert_eq!(remote("ftp://h").user, None);
        let r = remote("sftp://me@[::1]:2222/srv/in");
        assert_eq!(
            (r.host.as_str(), r.port, r.path.as_str()),
            ("::1", 2222, "/srv/in")
        );
        assert_eq!(remote("sftp://me@h/~/in").path, "in");
        assert_eq!(remote("sftp://me@h").path, "");
        assert_eq!(remote("sftp://me@h/").path, "/");
        let r = remote("ftp://a%40b.de:p%3Ass@host/x");
        assert_eq!(r.user.as_deref(), Some("a@b.de"));
        assert_eq!(r.password.as_deref(), Some("p:ss"));
        let r = remote("ftp://a@b.de:pw@host/x");
        assert_eq!(r.user.as_deref(), Some("a@b.de"));
        assert_eq!(r.host, "host");
    }

    #[test]
    fn invalid_urls() {
        for s in [
            "sftp://host/in",
            "ftp://",
            "ftp://user@/x",
            "ftp://h:0/x",
            "ftp://h:99999/x",
            "ftp://h:x/x",
            "ftp://[::1/x",
            "ftp://h/%zz",
            "ftp://h/a%0Ab",
        ] {
            assert!(FolderSpec::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn display_hides_password() {
        let spec = FolderSpec::parse("ftp://user:secret@host:21/inbox").unwrap();
        assert_eq!(spec.display(), "ftp://user@host:21/inbox");
        assert!(!format!("{spec:?}").contains("secret"));
        assert!(!format!("{:?}", spec.remote().unwrap()).contains("secret"));
        assert_eq!(
            FolderSpec::parse("sftp://u@h/~/in").unwrap().display(),
            "sftp://u@h:22/~/in"
        );
        assert_eq!(
            FolderSpec::parse("ftp://u@h//srv").unwrap().display(),
            "ftp://u@h:21//srv"
        );
        let err = FolderSpec::parse("ftp://user:secret@host:xx/").unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "ftp://u@h:21/inbox",
            "ftp://u@h:21//srv/in",
            "sftp://u@h:22/srv/in",
            "sftp://u@h:22/~/in",
            "ftps://a%40b@[::1]:990/x",
        ] {
            let spec = FolderSpec::parse(s).unwrap();
            assert_eq!(spec.display(), s);
            assert_eq!(FolderSpec::parse(&spec.display()).unwrap(), spec);
        }
    }

    #[test]
    fn names() {
        for ok in ["a.gdt", "ORDER 1.hl7", ".hidden", "a..b", "Ärztin.txt"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a\\b",
            "a\0b",
            "a\r\nDELE x",
            &"x".repeat(256),
        ] {
            assert!(
                matches!(check_name(bad), Err(FolderError::InvalidName { .. })),
                "{bad:?}"
            );
        }
        assert!(check_dir("../done").is_ok());
        assert!(check_dir("/srv/done").is_ok());
        assert!(check_dir("").is_err());
        assert!(check_dir("a\nb").is_err());
    }

    #[test]
    fn joins() {
        assert_eq!(remote_join("", "a"), "a");
        assert_eq!(remote_join("/", "a"), "/a");
        assert_eq!(remote_join("in", "a"), "in/a");
        assert_eq!(remote_join("in", "/abs"), "/abs");
    }
}
