//! The chat service (see the module documentation of `services`).
