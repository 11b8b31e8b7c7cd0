//! The memory updater: turns a node's mailbox into its new memory. Nodes without any mail keep
//! their memory unchanged.

use burn::prelude::*;

use super::{GruCell, MailboxAttention, RnnCell};

/// How a recurrent updater reduces the mailbox to one input (`last` or `mean` in a config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, burn::serde::Serialize, burn::serde::Deserialize)]
#[serde(crate = "burn::serde", rename_all = "kebab-case")]
pub enum Combine {
    /// The most recent mail.
    Last,
    /// The mean of the mails present.
    Mean,
}

/// GRU (TGN), RNN (JODIE) or attention over the mailbox (APAN).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum MemoryUpdater {
    /// TGN's GRU cell over the combined mail.
    Gru(GruCell),
    /// JODIE's RNN cell over the combined mail.
    Rnn(RnnCell),
    /// APAN's attention over the mailbox.
    Transformer(MailboxAttention),
}

/// A batch's mailboxes: each mail beside its time encoding, the updater's input `[mail ‖ φ]`
/// in two parts (the mails are data, the encodings are learned: see
/// [`mspipe_kernels::linear_of_columns`]).
#[derive(Debug, Clone)]
pub struct Mails {
    mail: Tensor<3>,
    time: Tensor<3>,
}

impl Mails {
    /// `mail` `[N, M, mail]` (oldest first) and their time encodings `time` `[N, M, time]`.
    pub fn new(mail: Tensor<3>, time: Tensor<3>) -> Self {
        Mails { mail, time }
    }

    /// Mails and encodings side by side in `joined` `[N, M, mail + time]`, the first `mail`
    /// columns the mails (read in place).
    pub fn side_by_side(joined: Tensor<3>, mail: usize) -> Self {
        let width = joined.dims()[2];
        Mails {
            mail: joined.clone().narrow(2, 0, mail),
            time: joined.narrow(2, mail, width - mail),
        }
    }
}

impl MemoryUpdater {
    /// `memory`: `[N, d]`; `mails`: `N` mailboxes of `M`; `mask`: `[N, M]`. Returns the updated
    /// `[N, d]`.
    pub fn forward(
        &self,
        memory: Tensor<2>,
        mails: Mails,
        mask: Tensor<2, Bool>,
        combine: Combine,
    ) -> Tensor<2> {
        let n = memory.dims()[0];
        let has_mail: Tensor<1> = mask.clone().any_dim(1).float().reshape([n]);
        let reduced = |x| reduce(x, mask.clone(), combine);
        let updated = match self {
            MemoryUpdater::Transformer(att) => {
                att.forward(mails.mail, mails.time, mask.clone(), memory.clone())
            }
            MemoryUpdater::Gru(cell) => {
                cell.forward(reduced(mails.mail), reduced(mails.time), memory.clone())
            }
            MemoryUpdater::Rnn(cell) => {
                cell.forward(reduced(mails.mail), reduced(mails.time), memory.clone())
            }
        };
        mspipe_kernels::rows_where(has_mail, updated, memory)
    }
}

/// `[N, M, in]` → `[N, in]`: the newest slot (mailboxes fill from the end), or the masked mean.
fn reduce(mails: Tensor<3>, mask: Tensor<2, Bool>, combine: Combine) -> Tensor<2> {
    let [n, m, w] = mails.dims();
    match combine {
        // One slot is the whole box: no slice to record (its backward is a zeroed copy).
        Combine::Last if m == 1 => mails.reshape([n, w]),
        Combine::Last => mails.narrow(1, m - 1, 1).reshape([n, w]),
        Combine::Mean => {
            let keep: Tensor<3> = mask.float().unsqueeze_dim(2);
            let count: Tensor<2> = keep.clone().sum_dim(1).squeeze_dim::<2>(1).clamp_min(1.0);
            let sum: Tensor<2> = (mails * keep).sum_dim(1).squeeze_dim(1);
            sum / count
        }
    }
}
