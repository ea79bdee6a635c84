//! The medrelay engine: channels made of a source, optional filter and
//! transformer steps, and destinations, each fed from its own durable queue.
//!
//! Where a message goes next, in module order:
//! [`source`] (MLLP frames in) → [`channel`] (parse, validate, filter, transform,
//! store, ACK) → [`queue`] (one worker per destination, retries with backoff) →
//! [`destination`] (MLLP peer or folder).

pub mod channel;
pub mod clock;
pub mod config;
pub mod destination;
pub mod direct;
pub mod folder_source;
pub mod http_poll_source;
pub mod intake;
pub mod integration;
pub mod json_intake;
pub mod json_poller;
pub mod metrics;
pub mod queue;
pub mod results;
pub mod retention;
pub mod run_state;
pub mod source;
pub mod tls;
pub mod transform;
pub mod worklist_stage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use medrelay_store::Store;
use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info};

pub use channel::Channel;
pub use config::{ChannelConfig, DestinationConfig, SourceConfig};
pub use integration::IntegrationConfig;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("transformer: {0}")]
    Transform(String),
    #[error("channel {channel}: cannot listen on {addr}: {source}")]
    Bind {
        channel: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Store(#[from] medrelay_store::StoreError),
}

/// The queue key of a destination: `channel/destination`.
pub fn queue_key(channel: &str, destination: &str) -> String {
    format!("{channel}/{destination}")
}

/// A destination's name: configured, or its connector type and position.
pub fn destination_name(cfg: &DestinationConfig, index: usize) -> String {
    cfg.name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", cfg.kind(), index + 1))
}

/// A channel or integration as an operator sees it: what it listens to and
/// the queues it fills (for the dashboard's overview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// `channel` or `integration`.
    pub kind: &'static str,
    pub name: String,
    pub org: String,
    /// The preset of an integration; empty for a channel.
    pub preset: String,
    /// Where messages come from, in words (`MLLP 127.0.0.1:2575`, a folder …).
    pub source: String,
    /// The queue keys of its destinations (see [`queue_key`]).
    pub queues: Vec<String>,
}

/// Every configured channel and integration as a [`Component`].
pub fn components(
    channels: &[ChannelConfig],
    integrations: &[IntegrationConfig],
) -> Vec<Component> {
    let mut out = Vec::new();
    for c in channels {
        let source = match (&c.source.mllp, &c.source.poll) {
            (Some(addr), _) => format!("MLLP {addr}"),
            (None, Some(p)) => format!("polls {}", p.url),
            (None, None) => String::new(),
        };
        out.push(Component {
            kind: "channel",
            name: c.name.clone(),
            org: c.org.clone(),
            preset: String::new(),
            source,
            queues: c
                .destinations
                .iter()
                .enumerate()
                .map(|(i, d)| queue_key(&c.name, &destination_name(d, i)))
                .collect(),
        });
    }
    for i in integrations {
        let inbound = &i.inbound;
        let source = if let Some(addr) = inbound.mllp {
            format!("MLLP {addr}")
        } else if let Some(f) = &inbound.folder {
            format!("folder {f}")
        } else if inbound.poll.is_some() {
            "polls the EHR".to_string()
        } else if inbound.push.is_some() {
            format!("HTTP push to /api/v1/integrations/{}/appointments", i.name)
        } else if i.format() == Some(integration::Format::Fhir) {
            "FHIR API /fhir/R4".to_string()
        } else {
            String::new()
        };
        out.push(Component {
            kind: "integration",
            name: i.name.clone(),
            org: i.org.clone(),
            preset: i.preset.clone(),
            source,
            queues: i
                .results_destination()
                .map(|_| vec![queue_key(&i.name, integration::RESULTS)])
                .unwrap_or_default(),
        });
    }
    out
}

/// A JSON push endpoint: where the bodies go and who may send them.
#[derive(Clone)]
pub struct Pushed {
    pub intake: Arc<json_intake::JsonIntake>,
    pub config: integration::PushConfig,
}

/// A running engine.
/// The integration (and so the device group) that orders created through the
/// FHIR API belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FhirTarget {
    pub integration: String,
    pub group: String,
}

pub struct Engine {
    results: results::Results,
    pushes: HashMap<String, Pushed>,
    pollers: Vec<Arc<json_poller::JsonPoller>>,
    fhir: HashMap<String, FhirTarget>,
    hisp: Arc<direct::Hisp>,
    shutdown: CancellationToken,
    listeners: JoinSet<()>,
    workers: JoinSet<()>,
    addrs: HashMap<String, SocketAddr>,
    pipelines: Arc<HashMap<String, Arc<Channel>>>,
    grace: Duration,
}

impl Engine {
    /// Binds every channel's and integration's source and starts every
    /// destination's queue worker. Queues left over from a previous run resume
    /// at once.
    pub async fn start(
        store: Store,
        channels: &[ChannelConfig],
        integrations: &[IntegrationConfig],
        grace: Duration,
    ) -> Result<Engine, EngineError> {
        Engine::start_with_direct(
            store,
            channels,
            integrations,
            grace,
            direct::DirectConfig::default(),
        )
        .await
    }

    /// [`start`](Self::start), with the Direct HISP configured as `direct`
    /// (its worker runs until shutdown; [`hisp`](Self::hisp) is the API's way in).
    pub async fn start_with_direct(
        store: Store,
        channels: &[ChannelConfig],
        integrations: &[IntegrationConfig],
        grace: Duration,
        direct: direct::DirectConfig,
    ) -> Result<Engine, EngineError> {
        let errors = check(channels, integrations);
        if !errors.is_empty() {
            return Err(EngineError::Config(errors.join("\n")));
        }
        metrics::describe();
        // The run states operators gave channels outlive a restart.
        let saved_states = store
            .channel_states()
            .await?
            .into_iter()
            .filter_map(|s| {
                let state = run_state::RunState::parse(&s.state)?;
                if state != run_state::RunState::Running {
                    tracing::warn!(
                        channel = %s.channel,
                        state = state.as_str(),
                        by = %s.changed_by,
                        "channel starts {} as an operator left it",
                        state.as_str()
                    );
                }
                Some((s.channel, state))
            })
            .collect();
        let mut engine = Starting {
            saved_states,
            store: store.clone(),
            shutdown: CancellationToken::new(),
            control_ids: Arc::new(clock::ControlIds::new()),
            listeners: JoinSet::new(),
            workers: JoinSet::new(),
            addrs: HashMap::new(),
            pipelines: HashMap::new(),
            grace,
        };
        for cfg in channels {
            engine.channel(cfg, None).await?;
        }
        let mut routes = HashMap::new();
        let mut pushes = HashMap::new();
        let mut pollers = Vec::new();
        let mut fhir = HashMap::new();
        for cfg in integrations {
            if cfg.format() == Some(integration::Format::Fhir) {
                fhir.entry(cfg.org.clone()).or_insert_with(|| FhirTarget {
                    integration: cfg.name.clone(),
                    group: cfg.group.clone(),
                });
                continue;
            }
            let stage = Arc::new(
                worklist_stage::WorklistStage::new(cfg)
                    .map_err(|e| EngineError::Config(format!("integration {}: {e}", cfg.name)))?,
            );
            let mut dest = cfg.results_destination();
            if let Some(d) = dest.as_mut().filter(|d| d.http.is_some()) {
                d.confirm = stage
                    .json_mapping()
                    .and_then(|m| m.transport.result_async.clone())
                    .filter(|a| !a.status_url.is_empty());
            }
            let queue = match dest {
                Some(dest) => Some(engine.results_worker(cfg, &dest)?),
                None => None,
            };
            match (cfg.format(), &cfg.inbound.folder) {
                (Some(integration::Format::Hl7), Some(folder)) => {
                    let channel = engine.pipeline(&cfg.file_channel(), Some(stage.clone()))?;
                    engine.folder_source(cfg, folder, Arc::new(intake::Hl7Files { channel }))?;
                }
                (Some(integration::Format::Gdt), Some(folder)) => {
                    let handler = intake::GdtFiles::new(cfg, stage.clone(), store.clone());
                    engine.folder_source(cfg, folder, Arc::new(handler))?;
                }
                (Some(integration::Format::Json), _) => {
                    if let Some(poll) = &cfg.inbound.poll {
                        let poller = Arc::new(
                            json_poller::JsonPoller::new(
                                &cfg.name,
                                &cfg.org,
                                poll,
                                stage.clone(),
                                store.clone(),
                            )
                            .map_err(|e| {
                                EngineError::Config(format!(
                                    "integration {}: inbound.poll: {e}",
                                    cfg.name
                                ))
                            })?,
                        );
                        if let Some(every) = poll.every {
                            engine
                                .workers
                                .spawn(poller.clone().run(every, engine.shutdown.clone()));
                        }
                        pollers.push(poller);
                    }
                    if let Some(push) = cfg.inbound.push.as_ref().and_then(|p| p.config()) {
                        let intake = json_intake::JsonIntake {
                            channel: cfg.name.clone(),
                            org: cfg.org.clone(),
                            stage: stage.clone(),
                            store: store.clone(),
                        };
                        pushes.insert(
                            cfg.name.clone(),
                            Pushed {
                                intake: Arc::new(intake),
                                config: push,
                            },
                        );
                    }
                }
                _ => {
                    if let Some(ch) = cfg.channel() {
                        engine.channel(&ch, Some(stage.clone())).await?;
                    }
                }
            }
            routes.insert(
                cfg.name.clone(),
                results::ResultsRoute {
                    stage,
                    queue,
                    pdf_folder: cfg.pdf_folder(),
                    direct: cfg.outbound.direct.clone(),
                },
            );
        }
        let hisp = direct::Hisp::new(store.clone(), direct).map_err(EngineError::Config)?;
        engine
            .workers
            .spawn(hisp.clone().run(engine.shutdown.clone()));
        Ok(Engine {
            results: results::Results::new(store, routes, engine.control_ids.clone(), hisp.clone()),
            hisp,
            pushes,
            pollers,
            fhir,
            shutdown: engine.shutdown,
            listeners: engine.listeners,
            workers: engine.workers,
            addrs: engine.addrs,
            pipelines: Arc::new(engine.pipelines),
            grace,
        })
    }

    /// The integrations that accept pushed JSON appointments, by name (for the
    /// HTTP API's `/api/v1/integrations/{name}/appointments`).
    pub fn pushes(&self) -> HashMap<String, Pushed> {
        self.pushes.clone()
    }

    /// The HL7 pipelines by channel (and integration) name, for reprocessing
    /// stored messages.
    pub fn pipelines(&self) -> Arc<HashMap<String, Arc<Channel>>> {
        self.pipelines.clone()
    }

    /// The Direct HISP (for the Messaging API).
    pub fn hisp(&self) -> Arc<direct::Hisp> {
        self.hisp.clone()
    }

    /// Where orders created through the FHIR API go, by organisation: the
    /// organisation's `fhir` integration (the first, when it has several).
    pub fn fhir_targets(&self) -> HashMap<String, FhirTarget> {
        self.fhir.clone()
    }

    /// The pollers a device's worklist request should refresh first: those of
    /// its organisation that poll "on each device invocation".
    pub fn worklist_pollers(&self) -> Vec<Arc<json_poller::JsonPoller>> {
        self.pollers
            .iter()
            .filter(|p| p.on_worklist())
            .cloned()
            .collect()
    }

    /// Submits measurements and resends results (for the HTTP API).
    pub fn results(&self) -> results::Results {
        self.results.clone()
    }

    /// The address a channel's source listens on (useful with port 0).
    pub fn source_addr(&self, channel: &str) -> Option<SocketAddr> {
        self.addrs.get(channel).copied()
    }

    /// A token that is cancelled when the engine stops.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight messages finish and get their ACK, lets
    /// each queue worker finish its current attempt, then returns. The caller
    /// closes the store afterwards.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while self.listeners.join_next().await.is_some() {}
        let workers = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(self.grace, workers).await.is_err() {
            self.workers.abort_all();
        }
    }
}

/// Every problem of a configuration, worded for the person who wrote it. Names
/// and listening addresses must be unique across channels and integrations.
pub fn check(channels: &[ChannelConfig], integrations: &[IntegrationConfig]) -> Vec<String> {
    let mut all: Vec<ChannelConfig> = channels.to_vec();
    all.extend(integrations.iter().filter_map(IntegrationConfig::channel));
    let mut errors = config::check_channels(&all);
    for i in integrations {
        errors.extend(i.problems());
    }
    errors
}

/// The engine while its parts are being started.
struct Starting {
    /// The run state each channel was left in (none: running).
    saved_states: HashMap<String, run_state::RunState>,
    store: Store,
    shutdown: CancellationToken,
    control_ids: Arc<clock::ControlIds>,
    listeners: JoinSet<()>,
    workers: JoinSet<()>,
    addrs: HashMap<String, SocketAddr>,
    pipelines: HashMap<String, Arc<Channel>>,
    grace: Duration,
}

impl Starting {
    fn worker(
        &self,
        channel: &str,
        name: &str,
        dest: &DestinationConfig,
        done: broadcast::Sender<channel::DeliveryDone>,
        control: run_state::RunControl,
    ) -> Result<(queue::QueueWorker, String, Arc<Notify>), EngineError> {
        let key = queue_key(channel, name);
        let wake = Arc::new(Notify::new());
        let worker = queue::QueueWorker {
            key: key.clone(),
            channel: channel.to_string(),
            destination: name.to_string(),
            store: self.store.clone(),
            connector: destination::Connector::new(dest, channel, &self.store)?,
            retry: dest.retry.clone(),
            wake: wake.clone(),
            done,
            metrics: metrics::DestinationMetrics::new(channel, name),
            control,
        };
        Ok((worker, key, wake))
    }

    /// An integration's results queue and its worker.
    fn results_worker(
        &mut self,
        cfg: &IntegrationConfig,
        dest: &DestinationConfig,
    ) -> Result<(String, Arc<Notify>), EngineError> {
        let (done, _) = broadcast::channel(16);
        let (worker, key, wake) = self.worker(
            &cfg.name,
            integration::RESULTS,
            dest,
            done,
            run_state::RunControl::default(),
        )?;
        self.workers.spawn(worker.run(self.shutdown.clone()));
        Ok((key, wake))
    }

    /// A channel's pipeline and its destination workers, without a source.
    fn pipeline(
        &mut self,
        cfg: &ChannelConfig,
        worklist: Option<Arc<worklist_stage::WorklistStage>>,
    ) -> Result<Arc<Channel>, EngineError> {
        let (done, _) = broadcast::channel(4096);
        let mut keys = Vec::new();
        let mut wakes = Vec::new();
        let mut pending_workers = Vec::new();
        let control = run_state::RunControl::default();
        if let Some(state) = self.saved_states.get(&cfg.name) {
            control.set(*state);
        }
        for (i, dest) in cfg.destinations.iter().enumerate() {
            let name = destination_name(dest, i);
            let (worker, key, wake) =
                self.worker(&cfg.name, &name, dest, done.clone(), control.clone())?;
            pending_workers.push(worker);
            keys.push(key);
            wakes.push(wake);
        }
        let channel = Arc::new(
            Channel::new(
                cfg,
                self.store.clone(),
                self.control_ids.clone(),
                keys,
                wakes,
                done,
                worklist,
            )?
            .with_control(control),
        );
        for w in pending_workers {
            self.workers.spawn(w.run(self.shutdown.clone()));
        }
        self.pipelines.insert(cfg.name.clone(), channel.clone());
        Ok(channel)
    }

    /// An inbound folder feeding `handler`.
    fn folder_source(
        &mut self,
        cfg: &IntegrationConfig,
        folder: &str,
        handler: Arc<dyn folder_source::FileHandler>,
    ) -> Result<(), EngineError> {
        let spec = medrelay_folder::FolderSpec::parse(folder).map_err(|e| {
            EngineError::Config(format!("integration {}: inbound.folder: {e}", cfg.name))
        })?;
        let source = folder_source::FolderSource {
            channel: cfg.name.clone(),
            folder: medrelay_folder::Folder::new(spec, cfg.inbound.remote.options()),
            cfg: cfg.folder_inbound(),
            handler,
        };
        let span = tracing::error_span!("channel", name = %cfg.name);
        self.listeners
            .spawn(source.run(self.shutdown.clone()).instrument(span));
        Ok(())
    }

    async fn channel(
        &mut self,
        cfg: &ChannelConfig,
        worklist: Option<Arc<worklist_stage::WorklistStage>>,
    ) -> Result<(), EngineError> {
        let channel = self.pipeline(cfg, worklist)?;
        if let Some(poll) = &cfg.source.poll {
            let source =
                http_poll_source::HttpPollSource::new(&cfg.name, poll, channel).map_err(|e| {
                    EngineError::Config(format!("channel {}: source.poll: {e}", cfg.name))
                })?;
            let span = tracing::error_span!("channel", name = %cfg.name);
            self.listeners
                .spawn(source.run(self.shutdown.clone()).instrument(span));
            return Ok(());
        }
        let Some(addr) = cfg.source.mllp else {
            return Err(EngineError::Config(format!(
                "channel {}: the source needs `mllp` or `poll`",
                cfg.name
            )));
        };
        let src = &cfg.source;
        let allow = mllp::AllowList::parse(&src.allow)
            .map_err(|e| EngineError::Config(format!("channel {}: {e}", cfg.name)))?;
        let tls = src.tls.as_ref().map(tls::server).transpose()?;
        let listener = mllp::Listener::bind(mllp::ListenerConfig {
            addr,
            tls,
            allow,
            idle_timeout: src.idle_timeout,
            max_connections: src.max_connections,
            max_frame: src.max_frame,
            ..mllp::ListenerConfig::new(addr)
        })
        .await
        .map_err(|source| EngineError::Bind {
            channel: cfg.name.clone(),
            addr,
            source,
        })?;
        let local = listener.local_addr();
        info!(channel = %cfg.name, addr = %local, tls = src.tls.is_some(), "MLLP source listening");
        self.addrs.insert(cfg.name.clone(), local);
        let handler = Arc::new(source::MllpSource { channel });
        let token = self.shutdown.clone();
        let name = cfg.name.clone();
        let grace = self.grace;
        // error level: the span carries context and must exist whatever the filter.
        let span = tracing::error_span!("channel", name = %cfg.name);
        self.listeners.spawn(
            async move {
                if let Err(e) = listener.run(handler, token, grace).await {
                    error!(channel = %name, error = %e, "MLLP source stopped with an error");
                }
            }
            .instrument(span),
        );
        Ok(())
    }
}
