//! Reloading the policy files on `SIGHUP`, without a restart.

use super::Authz;

/// Installs a `SIGHUP` handler (before returning, so a signal sent right after start-up is
/// never fatal) and reloads `authz`'s policy files on each signal. The task ends at the first
/// signal after the server holding `authz` is gone.
pub fn spawn_reload_on_sighup(authz: &Authz) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let weak = authz.downgrade();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(inner) = weak.upgrade() else {
                    break;
                };
                tracing::info!("SIGHUP: reloading the authorization policies");
                // Failures are logged by reload_policies, and the old policies stay in force.
                let _ = Authz::from_inner(inner).reload_policies().await;
            }
        });
    }
    #[cfg(not(unix))]
    let _ = authz;
    Ok(())
}
