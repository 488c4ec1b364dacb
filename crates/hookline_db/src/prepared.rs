//! Raw SQL that each connection prepares once: [`prepared`] is `diesel::sql_query` for
//! the fixed statements on the hot paths (ingest's group commit, the worker's batch, the
//! delivery loop).
//!
//! diesel never caches a `sql_query` (it marks itself unsafe to cache), so every call
//! costs a Parse + Describe round trip and PostgreSQL's parse and analysis before the
//! Bind + Execute, and a Close after. A [`Prepared`] is keyed in the connection's statement
//! cache by its SQL text and bind types, so a connection sends Parse once per statement
//! and each later call is one Bind + Execute. The text is `&'static str`: the cache holds
//! every distinct text for the connection's life, so only a fixed few may go through it
//! (a text built at run time is built once, in a static); statements built from names
//! (retention's partitions, for instance) stay `sql_query`.

use std::marker::PhantomData;

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{HasSqlType, Untyped};

/// A raw SQL statement with its bind values, cached per connection (see the module).
#[must_use = "a statement runs only when loaded or executed"]
pub(crate) struct Prepared<'a> {
    sql: &'static str,
    binds: Vec<Box<dyn QueryFragment<Pg> + Send + 'a>>,
}

/// `sql`, with `$1`, `$2`, … bound in the order of the [`Prepared::bind`] calls.
pub(crate) fn prepared<'a>(sql: &'static str) -> Prepared<'a> {
    Prepared {
        sql,
        binds: Vec::new(),
    }
}

impl<'a> Prepared<'a> {
    /// Binds the next parameter as SQL type `ST`.
    pub(crate) fn bind<ST, V>(mut self, value: V) -> Self
    where
        Pg: HasSqlType<ST>,
        V: ToSql<ST, Pg> + Send + 'a,
        ST: Send + 'a,
    {
        self.binds.push(Box::new(Bind {
            value,
            sql_type: PhantomData::<ST>,
        }));
        self
    }
}

struct Bind<ST, V> {
    value: V,
    sql_type: PhantomData<ST>,
}

impl<ST, V> QueryFragment<Pg> for Bind<ST, V>
where
    Pg: HasSqlType<ST>,
    V: ToSql<ST, Pg>,
{
    fn walk_ast<'b>(&'b self, mut pass: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        pass.push_bind_param_value_only(&self.value)
    }
}

impl QueryFragment<Pg> for Prepared<'_> {
    // Unlike `SqlQuery`, no `unsafe_to_cache_prepared()`: the text is the cache key.
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.sql);
        for bind in &self.binds {
            bind.walk_ast(out.reborrow())?;
        }
        Ok(())
    }
}

impl QueryId for Prepared<'_> {
    type QueryId = ();
    // No static id: the statement cache keys it by its SQL text and bind types.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared<'_> {
    type SqlType = Untyped;
}
