//! The users service (see the module documentation of `services`).
