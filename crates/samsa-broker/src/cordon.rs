//! This broker's log directories in the metadata log (KIP-858, KIP-1066).
//!
//! The broker registers the `directory.id` of each of its log directories and
//! the ones `cordoned.log.dirs` lists, so the controller keeps new replicas
//! off a broker whose every directory is cordoned. When the effective
//! `cordoned.log.dirs` changes (a dynamic broker config), the broker
//! registers again with the same incarnation: the controller records only
//! the new cordoned set ([`samsa_metadata::MetadataRecord::BrokerRegistrationChange`])
//! and the broker epoch stays.
//!
//! The check runs after every image the broker applies, so a change that
//! failed to commit (no quorum leader yet) is retried with the next image;
//! a change already in the image plans nothing. One background write runs
//! at a time and checks again after writing, so a config change landing
//! while it ran is not missed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use samsa_metadata::ControllerError;

use crate::broker::Broker;

/// Registers this broker's current cordoned log directories when the image
/// disagrees with its effective `cordoned.log.dirs`. A quorum write: call it
/// on a blocking thread (see [`sync_in_background`]). Does nothing until the
/// image holds this process's own registration with the same directories.
/// Returns whether it wrote.
pub fn sync_cordoned_log_dirs(broker: &Broker) -> Result<bool, ControllerError> {
    let image = broker.image();
    let Some(me) = image.brokers.get(&broker.settings.node_id) else {
        return Ok(false);
    };
    let reg = crate::broker::registration(broker, me.fenced);
    if me.incarnation != reg.incarnation || me.log_dirs != reg.log_dirs {
        return Ok(false);
    }
    let mut current = me.cordoned_log_dirs.clone();
    current.sort();
    let mut wanted = reg.cordoned_log_dirs.clone();
    wanted.sort();
    if current == wanted {
        return Ok(false);
    }
    tracing::info!(cordoned = ?wanted, "registering a change of the cordoned log directories");
    broker.admin(|c| c.register_broker(reg)).map(|_| true)
}

/// Writes one background sync makes at most before leaving the rest to the
/// next image.
const SYNC_WRITES_MAX: u32 = 3;

/// [`sync_cordoned_log_dirs`] on a blocking thread when it has anything to
/// do (checked first without a write, so most images cost a comparison).
pub fn sync_in_background(broker: &Arc<Broker>) {
    let image = broker.image();
    let Some(me) = image.brokers.get(&broker.settings.node_id) else {
        return;
    };
    let cordoned = broker.config();
    let mut wanted = broker
        .log_dirs
        .cordoned_ids(cordoned.get("cordoned.log.dirs").unwrap_or(""));
    wanted.sort();
    let mut current = me.cordoned_log_dirs.clone();
    current.sort();
    if wanted == current {
        return;
    }
    if broker.cordon_sync_running.swap(true, Ordering::AcqRel) {
        return; // the running one reads the config in force when it writes
    }
    let b = broker.clone();
    tokio::task::spawn_blocking(move || {
        // Again after a write: the config may have changed while it ran.
        for _ in 0..SYNC_WRITES_MAX {
            match sync_cordoned_log_dirs(&b) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot register the cordoned log directories yet");
                    break;
                }
            }
        }
        b.cordon_sync_running.store(false, Ordering::Release);
    });
}
