use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// A database failure, classified where it is made: can a retry help?
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had from the pool (database down, pool exhausted past its
    /// wait timeout). Retryable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error(transparent)]
    Query(#[from] DieselError),
    /// Migrations could not be applied.
    #[error("migrations failed: {0}")]
    Migration(String),
    /// `database.url` is unusable as written (an unknown `sslmode`, an unreadable
    /// `sslrootcert`, not a PostgreSQL URL). Permanent: fix the config.
    #[error("invalid {0}")]
    Config(String),
}

impl DbError {
    /// Whether retrying the same work later can succeed (connection loss, serialization
    /// failure, deadlock, a database restarting) as opposed to a permanent data error.
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Unavailable(_) => true,
            DbError::Query(e) => is_retryable(e),
            DbError::Migration(_) | DbError::Config(_) => false,
        }
    }
}

impl From<deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>> for DbError {
    fn from(e: deadpool::managed::PoolError<diesel_async::pooled_connection::PoolError>) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Whether a diesel error is transient. Constraint and data errors are permanent;
/// anything about the connection, serialization or deadlocks is not. Unknown server
/// errors count as transient: bounded retries then dead-lettering loses nothing, while
/// calling them permanent would drop work on a database hiccup.
pub fn is_retryable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(kind, _) => !matches!(
            kind,
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
                | DatabaseErrorKind::RestrictViolation
                | DatabaseErrorKind::ExclusionViolation
                | DatabaseErrorKind::ReadOnlyTransaction
        ),
        DieselError::BrokenTransactionManager | DieselError::RollbackErrorOnCommit { .. } => true,
        _ => false,
    }
}
