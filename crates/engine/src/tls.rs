//! TLS settings from configuration files into rustls configs (via the mllp crate).

use std::sync::Arc;

use crate::EngineError;
use crate::config::{ClientTls, ServerTls};

pub fn server(cfg: &ServerTls) -> Result<Arc<rustls::ServerConfig>, EngineError> {
    mllp::tls::server_config_from_files(&cfg.cert, &cfg.key, cfg.client_ca.as_deref())
        .map_err(|e| EngineError::Config(format!("source TLS: {e}")))
}

pub fn client(cfg: &ClientTls, addr: &str) -> Result<mllp::ClientTls, EngineError> {
    let identity = match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => {
            return Err(EngineError::Config(
                "destination TLS: give both `cert` and `key`, or neither".into(),
            ));
        }
    };
    let config = mllp::tls::client_config_from_files(&cfg.ca, identity)
        .map_err(|e| EngineError::Config(format!("destination TLS: {e}")))?;
    let server_name = cfg.server_name.clone().unwrap_or_else(|| {
        addr.rsplit_once(':')
            .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .unwrap_or_else(|| addr.to_string())
    });
    Ok(mllp::ClientTls {
        config,
        server_name,
    })
}
