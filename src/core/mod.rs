//! The pure decision logic: state machines with time passed in, no I/O.

pub mod dampening;
pub mod fsm;
