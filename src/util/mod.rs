//! Small helpers that several parts of the program share and that belong to
//! none of them: today, the one safe way to write a file ([`fs`]).

pub mod fs;
