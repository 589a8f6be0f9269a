//! Flare cluster model.
//!
//! This crate holds the pieces of the cluster logic that are pure
//! computation and shared by `flared` (nodes) and `flarei` (index):
//!
//! * [`hash`]: the key hash algorithms (`simple`, `crc32`, `jenkins`, and the
//!   internal `murmur`, `bitshift`, `adler32`), see cluster spec §4.2;
//! * [`modular`]: the modular key → partition resolver table, built lazily,
//!   see cluster spec §4.3;
//! * [`flare_xml`]: the `flare.xml` document of a node map;
//! * [`error`]: the crate's error type.

pub mod error;
pub mod flare_xml;
pub mod hash;
pub mod modular;
pub mod partitions;

pub use error::ClusterError;
pub use hash::{murmur, HashAlgorithm};
pub use modular::ModularTable;
pub use partitions::{MapError, Partition, PartitionMaps, ReadRoute, Replicas, Router, WriteRoute};
