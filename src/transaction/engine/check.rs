//! What no exchange could satisfy, refused before anything is sent or
//! counted.

use std::time::Duration;

use super::MAX_REPLY_CAPACITY;
use crate::error::{Error, Result};
use crate::transaction::ReplyEnd;

/// Checks one call's arguments against a reply buffer of `capacity` bytes.
///
/// # Errors
/// [`Error::InvalidInput`] for an empty request, a zero deadline, a
/// [`ReplyEnd::Length`] of 0 or longer than the reply buffer, a
/// [`ReplyEnd::Silence`] of zero.
pub(super) fn check_call(
    request_len: usize,
    reply: ReplyEnd<'_>,
    deadline: Duration,
    capacity: usize,
) -> Result<()> {
    let invalid = |what: String| Err(Error::InvalidInput(what));
    if request_len == 0 {
        return invalid("the request is empty: there is nothing to send".into());
    }
    if deadline.is_zero() {
        return invalid("a zero deadline cannot be met (use Duration::MAX for no deadline)".into());
    }
    match reply {
        ReplyEnd::Length(0) => {
            return invalid("ReplyEnd::Length(0): a reply must be at least 1 byte".into());
        }
        ReplyEnd::Silence(quiet) if quiet.is_zero() => {
            return invalid(
                "ReplyEnd::Silence(0): a reply cannot end after no silence; give the \
                 protocol's quiet time (Modbus RTU: 3.5 character times)"
                    .into(),
            );
        }
        ReplyEnd::Length(n) if n > capacity => {
            return invalid(format!(
                "ReplyEnd::Length({n}) does not fit the {capacity}-byte reply buffer; raise \
                 PortConfig::reply_capacity (1..={MAX_REPLY_CAPACITY})"
            ));
        }
        _ => {}
    }
    Ok(())
}
