//! The auth service (see the module documentation of `services`).
