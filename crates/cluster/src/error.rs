//! Errors of the cluster model.

/// Errors reported by the cluster model (configuration validation and
/// partition lookups). Messages are meant to be shown to an operator as is.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ClusterError {
    /// `key-hash-algorithm` names no known algorithm.
    #[error("unknown key-hash-algorithm '{0}' (accepted: simple, crc32, jenkins)")]
    UnknownHashAlgorithm(String),

    /// `key-hash-algorithm` names an algorithm that exists but is reserved
    /// (`bitshift`, `adler32`, `murmur`) and cannot be used for partitioning.
    #[error(
        "key-hash-algorithm '{0}' is reserved and cannot be used for partitioning \
         (accepted: simple, crc32, jenkins)"
    )]
    HashAlgorithmNotForPartitioning(&'static str),

    /// `partition-type` names something other than `modular`.
    #[error("unknown partition-type '{0}' (only 'modular' is supported)")]
    UnknownPartitionType(String),

    /// `partition-size` is below 2 (the table needs at least one row).
    #[error("partition-size must be at least 2 (got {0})")]
    InvalidPartitionSize(u32),

    /// `partition-modular-hint` is 0.
    #[error("partition-modular-hint must be at least 1 (got {0})")]
    InvalidModularHint(u32),

    /// `partition-modular-virtual` is 0.
    #[error("partition-modular-virtual must be at least 1 (got {0})")]
    InvalidModularVirtual(u32),

    /// A partition count outside `1 ..= partition-size - 1` was requested.
    #[error("partition count {count} is out of range (must be 1..={max})")]
    PartitionCountOutOfRange {
        /// The requested number of partitions.
        count: u32,
        /// The largest usable number of partitions (`partition-size - 1`).
        max: u32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_readable() {
        assert_eq!(
            ClusterError::UnknownHashAlgorithm("md5".into()).to_string(),
            "unknown key-hash-algorithm 'md5' (accepted: simple, crc32, jenkins)"
        );
        assert_eq!(
            ClusterError::InvalidPartitionSize(1).to_string(),
            "partition-size must be at least 2 (got 1)"
        );
        assert_eq!(
            ClusterError::PartitionCountOutOfRange {
                count: 1024,
                max: 1023
            }
            .to_string(),
            "partition count 1024 is out of range (must be 1..=1023)"
        );
        assert!(ClusterError::HashAlgorithmNotForPartitioning("murmur")
            .to_string()
            .contains("'murmur' is reserved"));
    }
}
