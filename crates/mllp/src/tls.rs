//! Building rustls configurations from PEM files.
//!
//! Every configuration uses the aws-lc-rs crypto provider explicitly, so the
//! application does not have to install a process-wide default provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Errors while building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PEM data is malformed.
    #[error("malformed PEM in {what}: {source}")]
    Pem {
        /// Which input (a file path or a description).
        what: String,
        /// Why.
        source: rustls_pki_types::pem::Error,
    },
    /// No `CERTIFICATE` section in the PEM data.
    #[error("no certificate found in {what}")]
    NoCertificates {
        /// Which input.
        what: String,
    },
    /// No private key section (PKCS#8, PKCS#1 or SEC1) in the PEM data.
    #[error("no private key found in {what}")]
    NoPrivateKey {
        /// Which input.
        what: String,
    },
    /// A CA certificate could not be used as a trust anchor.
    #[error("unusable CA certificate in {what}: {source}")]
    BadCa {
        /// Which input.
        what: String,
        /// Why.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls rejected the configuration, e.g. a key that does not match the
    /// certificate or a key type it does not support.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used by every configuration built here.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Parse every certificate in PEM data. `what` names the input in errors.
pub fn parse_certificates(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// Parse the first private key in PEM data. `what` names the input in errors.
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            what: what.to_owned(),
        },
        source => TlsError::Pem {
            what: what.to_owned(),
            source,
        },
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn roots(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in parse_certificates(pem, what)? {
        store.add(cert).map_err(|source| TlsError::BadCa {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(store)
}

/// A server configuration from a PEM certificate chain (leaf first) and key.
///
/// With `client_ca_pem`, clients must present a certificate signed by one of those
/// CAs (mutual TLS); without it, client certificates are not requested.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_labelled(
        (cert_chain_pem, "certificate chain"),
        (key_pem, "private key"),
        client_ca_pem.map(|pem| (pem, "client CA")),
    )
}

/// Like [`server_config`], reading the PEM files. Errors name the file.
pub fn server_config_from_files(
    cert_chain: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read(cert_chain)?;
    let key_pem = read(key)?;
    let ca = client_ca.map(read).transpose()?;
    let (chain_name, key_name) = (cert_chain.display().to_string(), key.display().to_string());
    let ca_name = client_ca.map(|p| p.display().to_string());
    server_config_labelled(
        (&chain, &chain_name),
        (&key_pem, &key_name),
        ca.as_deref().zip(ca_name.as_deref()),
    )
}

fn server_config_labelled(
    (chain_pem, chain_name): (&[u8], &str),
    (key_pem, key_name): (&[u8], &str),
    client_ca: Option<(&[u8], &str)>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = parse_certificates(chain_pem, chain_name)?;
    let key = parse_private_key(key_pem, key_name)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some((pem, name)) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(pem, name)?), provider)
                    .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(chain, key)?))
}

/// A client configuration trusting only the CA certificates in `ca_pem`, optionally
/// presenting a client certificate (`(chain_pem, key_pem)`) for mutual TLS.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> Result<Arc<ClientConfig>, TlsError> {
    client_config_labelled(
        (ca_pem, "CA"),
        identity.map(|(c, k)| ((c, "client certificate"), (k, "client key"))),
    )
}

/// Like [`client_config`], reading the PEM files (`identity` = certificate chain
/// and key files). Errors name the file.
pub fn client_config_from_files(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca_pem = read(ca)?;
    let ca_name = ca.display().to_string();
    let loaded = match identity {
        Some((cert, key)) => Some((
            read(cert)?,
            cert.display().to_string(),
            read(key)?,
            key.display().to_string(),
        )),
        None => None,
    };
    client_config_labelled(
        (&ca_pem, &ca_name),
        loaded
            .as_ref()
            .map(|(c, cn, k, kn)| ((c.as_slice(), cn.as_str()), (k.as_slice(), kn.as_str()))),
    )
}

type Labelled<'a> = (&'a [u8], &'a str);

fn client_config_labelled(
    (ca_pem, ca_name): Labelled<'_>,
    identity: Option<(Labelled<'_>, Labelled<'_>)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = roots(ca_pem, ca_name)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some(((chain_pem, chain_name), (key_pem, key_name))) => {
            let chain = parse_certificates(chain_pem, chain_name)?;
            let key = parse_private_key(key_pem, key_name)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The subject of a DER X.509 certificate as an RFC 4514 string
/// (`CN=device-7,O=Clinic,C=DE`), or `None` if the certificate cannot be parsed.
///
/// A minimal DER reader rather than a full X.509 crate: the certificate has already
/// been verified by rustls, and only the subject name is needed for logging and
/// authorisation decisions.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    let (cert, _) = der::expect(der, der::SEQUENCE)?;
    let (tbs, _) = der::expect(cert, der::SEQUENCE)?;
    let mut rest = tbs;
    // Optional explicit [0] version.
    if rest.first() == Some(&0xA0) {
        rest = der::next(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = der::next(rest)?.2;
    }
    let (subject, _) = der::expect(rest, der::SEQUENCE)?;
    der::name_to_string(subject)
}

mod der {
    pub const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;

    /// One TLV: (tag, contents, rest). Only low tag numbers, as X.509 names use.
    pub fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        if tag & 0x1F == 0x1F {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &b in &rest[..n] {
                len = (len << 8) | usize::from(b);
            }
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (contents, after) = rest.split_at(len);
        Some((tag, contents, after))
    }

    pub fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, contents, rest) = next(input)?;
        (t == tag).then_some((contents, rest))
    }

    fn oid_to_string(oid: &[u8]) -> Option<String> {
        let mut arcs: Vec<u64> = Vec::new();
        let mut value: u64 = 0;
        for &b in oid {
            value = value.checked_mul(128)?.checked_add(u64::from(b & 0x7F))?;
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (value / 40).min(2);
                    arcs.push(first);
                    arcs.push(value - first * 40);
                } else {
                    arcs.push(value);
                }
                value = 0;
            }
        }
        if arcs.is_empty() || oid.last().is_some_and(|b| b & 0x80 != 0) {
            return None;
        }
        Some(
            arcs.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join("."),
        )
    }

    fn attribute_name(oid: &str) -> Option<&'static str> {
        Some(match oid {
            "2.5.4.3" => "CN",
            "2.5.4.4" => "SN",
            "2.5.4.5" => "serialNumber",
            "2.5.4.6" => "C",
            "2.5.4.7" => "L",
            "2.5.4.8" => "ST",
            "2.5.4.9" => "STREET",
            "2.5.4.10" => "O",
            "2.5.4.11" => "OU",
            "2.5.4.42" => "GN",
            "0.9.2342.19200300.100.1.1" => "UID",
            "0.9.2342.19200300.100.1.25" => "DC",
            "1.2.840.113549.1.9.1" => "emailAddress",
            _ => return None,
        })
    }

    fn value_to_string(tag: u8, contents: &[u8]) -> String {
        let text = match tag {
            // UTF8String, PrintableString, IA5String, VisibleString
            0x0C | 0x13 | 0x16 | 0x1A => std::str::from_utf8(contents).ok().map(str::to_owned),
            // TeletexString: in practice Latin-1.
            0x14 => Some(contents.iter().map(|&b| char::from(b)).collect()),
            // BMPString: UTF-16BE.
            0x1E if contents.len().is_multiple_of(2) => {
                let units = contents
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]));
                char::decode_utf16(units)
                    .collect::<Result<String, _>>()
                    .ok()
            }
            _ => None,
        };
        match text {
            Some(text) => escape(&text),
            // RFC 4514: unknown encodings as '#' + hex of the whole DER value.
            None => {
                let mut hex = format!("#{tag:02x}");
                let len = contents.len();
                if len < 0x80 {
                    hex.push_str(&format!("{len:02x}"));
                } else {
                    let bytes = len.to_be_bytes();
                    let skip = bytes.iter().take_while(|&&b| b == 0).count();
                    hex.push_str(&format!("{:02x}", 0x80 | (bytes.len() - skip)));
                    for b in &bytes[skip..] {
                        hex.push_str(&format!("{b:02x}"));
                    }
                }
                for b in contents {
                    hex.push_str(&format!("{b:02x}"));
                }
                hex
            }
        }
    }

    fn escape(value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        let last = value.chars().count().saturating_sub(1);
        for (i, c) in value.chars().enumerate() {
            let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
                || (i == 0 && matches!(c, '#' | ' '))
                || (i == last && c == ' ');
            if special {
                out.push('\\');
                out.push(c);
            } else if c.is_control() {
                out.push_str(&format!("\\{:02x}", u32::from(c) & 0xFF));
            } else {
                out.push(c);
            }
        }
        out
    }

    pub fn name_to_string(mut name: &[u8]) -> Option<String> {
        let mut rdns = Vec::new();
        while !name.is_empty() {
            let (set, rest) = expect(name, SET)?;
            name = rest;
            let mut parts = Vec::new();
            let mut attrs = set;
            while !attrs.is_empty() {
                let (atv, rest) = expect(attrs, SEQUENCE)?;
                attrs = rest;
                let (oid, value) = expect(atv, OID)?;
                let oid = oid_to_string(oid)?;
                let (tag, contents, _) = next(value)?;
                let key = attribute_name(&oid).map(str::to_owned).unwrap_or(oid);
                parts.push(format!("{key}={}", value_to_string(tag, contents)));
            }
            rdns.push(parts.join("+"));
        }
        rdns.reverse();
        Some(rdns.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_specific() {
        assert!(matches!(
            parse_certificates(b"", "x.pem"),
            Err(TlsError::NoCertificates { what }) if what == "x.pem"
        ));
        assert!(matches!(
            parse_private_key(b"nothing here", "k.pem"),
            Err(TlsError::NoPrivateKey { what }) if what == "k.pem"
        ));
        let broken = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            parse_certificates(broken, "c.pem"),
            Err(TlsError::Pem { .. })
        ));
        let missing = Path::new("/nonexistent/medrelay/cert.pem");
        let err = server_config_from_files(missing, missing, None).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/medrelay/cert.pem"));
    }

    #[test]
    fn subject_of_garbage_is_none() {
        assert_eq!(certificate_subject(b""), None);
        assert_eq!(
            certificate_subject(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(certificate_subject(&[0x30, 0x03, 0x30, 0x01, 0x02]), None);
    }

    #[test]
    fn name_rendering() {
        // SEQUENCE { SET { SEQ { OID 2.5.4.6, PrintableString "DE" } },
        //            SET { SEQ { OID 2.5.4.3, UTF8String "a,b" } } }
        let name = [
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'D', b'E', 0x31,
            0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x03, b'a', b',', b'b',
        ];
        assert_eq!(der::name_to_string(&name).as_deref(), Some("CN=a\\,b,C=DE"));
        // Unknown attribute type and value encoding: dotted OID and RFC 4514 hex.
        let name = [
            0x31, 0x09, 0x30, 0x07, 0x06, 0x02, 0x2a, 0x03, 0x04, 0x01, 0xab,
        ];
        assert_eq!(der::name_to_string(&name).as_deref(), Some("1.2.3=#0401ab"));
    }
}
