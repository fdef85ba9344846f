//! Small helpers that several parts of the program share and that belong to
//! none of them: the one safe way to write a file ([`fs`]) and the exit
//! codes ([`exit`]).

pub mod exit;
pub mod fs;
