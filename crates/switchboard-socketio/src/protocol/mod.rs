//! The two wire formats, as pure codecs with no I/O: engine.io packets and
//! payloads ([`engine`]), socket.io packets ([`packet`]).

pub mod engine;
pub mod packet;
#[cfg(test)]
mod proptests;
