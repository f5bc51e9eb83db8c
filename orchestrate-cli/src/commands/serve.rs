//! `serve`: the REST server of `orchestrate-server` over this command
//! line's orchestrator.

use std::io::Write as _;

use orchestrate_core::Orchestrator;
use orchestrate_server::{router_with, ServerConfig};

use crate::error::{CliError, Exit};

pub(crate) async fn serve(
    addr: &str,
    token: Option<String>,
    orchestrator: &Orchestrator,
) -> Result<Exit, CliError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::Usage(format!("--addr {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::Usage(format!("--addr {addr}: {e}")))?;
    let mut config = ServerConfig::default();
    if let Some(token) = token {
        config = config.token(token);
    }
    let app = router_with(orchestrator.clone(), config);
    // The first line says where, for people and for scripts (port 0).
    println!("listening on http://{bound}");
    let _ = std::io::stdout().flush();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| CliError::Usage(format!("serving on {bound}: {e}")))?;
    Ok(Exit::Success)
}
