//! The dialects, one small module each.

mod africastalking;
mod hubtel;
mod nalo;

pub use africastalking::{AfricasTalking, EndEvent};
pub use hubtel::Hubtel;
pub use nalo::Nalo;

use super::Dialect;
use crate::journey::DialectName;

/// The dialect called `name`.
pub fn dialect(name: DialectName) -> &'static dyn Dialect {
    match name {
        DialectName::Africastalking => &AfricasTalking,
        DialectName::Hubtel => &Hubtel,
        DialectName::Nalo => &Nalo,
    }
}
