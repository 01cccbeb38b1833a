//! Placeholder: hardware-in-the-loop cases.
