//! Node memory: the host store and the updaters that turn mailboxes into new memories.

mod gru;
mod rnn;
mod store;
mod transformer;
mod updater;

pub use gru::{GruCell, GruCellConfig};
pub use rnn::{RnnCell, RnnCellConfig};
pub use store::{Gathered, MemoryStore};
pub use transformer::{MailboxAttention, MailboxAttentionConfig};
pub use updater::{Combine, Mails, MemoryUpdater};
