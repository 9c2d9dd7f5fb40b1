//! Errors of the embedding API.

/// Why a scan or a render failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The scan options are out of range.
    #[error("invalid scan options: {0}")]
    InvalidOptions(String),
    /// The source could not be opened (missing directory, unreadable export, broken demo data).
    #[error("could not open the log source")]
    Source(#[source] pim_loganalytics::Error),
    /// The query for PIM activations failed, so no activation could be found.
    #[error("the query for PIM activations failed")]
    PimQuery {
        /// The source's error.
        #[source]
        source: pim_loganalytics::Error,
    },
    /// A setting is missing or malformed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The credential chain could not be set up.
    #[error("could not set up Azure credentials")]
    Auth(#[source] pim_auth::Error),
    /// The model client could not be set up.
    #[error("could not set up the model client")]
    Model(#[source] pim_openai::Error),
    /// One step of [`crate::live::connect`] failed; `step` says which ("credentials",
    /// "opening the log source", "model").
    #[error("{step}")]
    Setup {
        /// The step.
        step: &'static str,
        /// Its error.
        #[source]
        source: Box<Error>,
    },
    /// A delivery destination could not be built (the message names the flag or variable).
    #[error(transparent)]
    Deliver(pim_deliver::Error),
    /// A ticket system's client could not be built (the message names the variable).
    #[error(transparent)]
    Tickets(pim_tickets::Error),
    /// The report could not be rendered.
    #[error("could not render the report")]
    Render(#[from] pim_report::Error),
    /// The PIM-events table has rows but not one of them is recognisable as an audit record
    /// (wrong file, wrong shape, no operation column): an empty report of it would be a lie.
    #[error("the PIM-events input cannot be read: {0}")]
    UnrecognisedInput(String),
}

impl Error {
    pub(crate) fn setup(step: &'static str, source: Error) -> Self {
        Self::Setup {
            step,
            source: Box::new(source),
        }
    }
}

/// Result of the embedding API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
