//! Fan-out across nodes.
//!
//! Every room publication goes through a [`Broker`], which delivers it to
//! the members of the room on every node, this one included, in one order.
//! [`LocalBroker`] (the default, one node) hands it straight to this node's
//! [`Hub`]; the Redis broker (`switchboard-redis`) sends it through Redis
//! and each node's reader hands it to its own hub.

use std::fmt;
use std::sync::Arc;

use crate::hub::Hub;
use crate::publication::Publication;

/// Delivers room publications to every node's members.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Delivers `publication` to every member of its room on every node
    /// (except the sessions of `publication.except_user`).
    fn publish(&self, publication: Publication);

    /// Users present in `room` across every node: (user id, name), sorted.
    /// The local broker asks the hub; others merge their nodes' views.
    fn who(&self, room: &str) -> Vec<(String, String)>;
}

/// One node: publications go straight to the local hub.
#[derive(Debug)]
pub struct LocalBroker {
    hub: Arc<Hub>,
}

impl LocalBroker {
    /// A broker delivering into `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl Broker for LocalBroker {
    fn publish(&self, publication: Publication) {
        self.hub.publish(&publication);
    }

    fn who(&self, room: &str) -> Vec<(String, String)> {
        self.hub.who(room)
    }
}
