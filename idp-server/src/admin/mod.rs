//! Administration commands run from the command line (`idp-server keys …`,
//! `idp-server client …`): they connect
//! to the configured database and exit, without starting the server.

pub mod accounts;
pub mod audit;
pub mod clients;
pub mod keys;
