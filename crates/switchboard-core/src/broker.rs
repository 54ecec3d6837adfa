//! Fan-out across nodes.
//!
//! Every room publication goes through a [`Broker`], which delivers it to
//! the members of the room on every node, this one included, in one order.
//! [`LocalBroker`] (the default, one node) hands it straight to this node's
//! [`Hub`]; the Redis broker (`switchboard-redis`) sends it through Redis
//! and each node's reader hands it to its own hub.
//!
//! The broker also knows where sessions live: a request for a session that
//! is not on this node is forwarded to its home node, whose address
//! [`Broker::locate`] gives.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Weak};

use crate::core::Core;
use crate::hub::Hub;
use crate::id::SessionId;
use crate::publication::Publication;

/// Delivers room publications to every node's members.
pub trait Broker: Send + Sync + fmt::Debug {
    /// Delivers `publication` to every member of its room on every node
    /// (except the sessions of `publication.except_user`).
    fn publish(&self, publication: Publication);

    /// Users present in `room` across every node: (user id, name), sorted.
    /// The local broker asks the hub; others merge their nodes' views.
    fn who(&self, room: &str) -> BrokerFuture<'_, Vec<(String, String)>>;

    /// A user became present in (`true`) or absent from (`false`) `room` on
    /// this node.
    fn presence_changed(&self, _room: &str, _user: &str, _name: &str, _present: bool) {}

    /// A session was created on this node (so requests for it landing on
    /// other nodes can be forwarded here).
    fn session_created(&self, _sid: SessionId) -> BrokerFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    /// A session of this node ended.
    fn session_ended(&self, _sid: SessionId) {}

    /// The address of the live node where session `sid` lives, when that is
    /// another node; `Ok(None)` when no live node has it (this one aside).
    /// `Err` when the directory cannot be read now: the session may well
    /// live, so the caller must answer "try again", never "gone".
    fn locate(&self, _sid: &str) -> BrokerFuture<'_, Result<Option<SocketAddr>, BrokerError>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    /// A request relayed to `node` found nobody listening there: the node
    /// is taken for dead (its sessions gone) until it shows it lives.
    fn home_unreachable(&self, _node: SocketAddr) {}

    /// Has every other node do `command` to its own sessions (this node
    /// has done it already); they act on it through the core given to
    /// [`Broker::bind_core`] ([`Core::apply_node_command`]).
    fn tell_other_nodes(&self, _command: NodeCommand) -> BrokerFuture<'_, Result<(), BrokerError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Gives the broker the core it serves, once it is built, so that
    /// requests from other nodes ([`Broker::tell_other_nodes`]) reach it.
    fn bind_core(&self, _core: Weak<Core>) {}
}

/// What one node (that got an HTTP API call) asks of every other node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeCommand {
    /// End every session of `user` (`close` 4005).
    DisconnectUser {
        /// The user id.
        user: String,
    },
    /// `user` is no longer a member of `room`: their sessions leave it.
    RemoveMember {
        /// The room.
        room: String,
        /// The user id.
        user: String,
    },
}

/// A broker call that could not be done: the shared state (Redis) is out of
/// reach. Nothing was changed; the caller may try again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

/// A boxed future of a broker call.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

    fn who(&self, room: &str) -> BrokerFuture<'_, Vec<(String, String)>> {
        Box::pin(std::future::ready(self.hub.who(room)))
    }
}
