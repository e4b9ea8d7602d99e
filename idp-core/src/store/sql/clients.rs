//! The client registry's table. Lists (URIs, grants) and the JWK set are JSON text, so
//! that one schema serves SQLite and PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, corrupt};
use crate::client::{AccessTokenFormat, Client, ClientAuthMethod, ClientId, GrantType};
use crate::directory::now;
use crate::secret::TokenHash;
use crate::store::ClientStore;
use crate::{CoreError, Result};

const CLIENT_COLUMNS: &str = "id, name, secret_hash, auth_method, redirect_uris, \
     post_logout_redirect_uris, backchannel_logout_uri, grant_types, jwks, service, \
     enablement_uri, access_token_format, created_at";

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| CoreError::Invalid(format!("client field: {e}")))
}

fn client_from_row(row: &AnyRow) -> Result<Client> {
    let list = |name: &str| -> Result<Vec<String>> {
        let text: String = row.try_get(name)?;
        serde_json::from_str(&text).map_err(|e| corrupt(name, e))
    };
    let grant_types = list("grant_types")?
        .iter()
        .map(|g| GrantType::parse(g).map_err(|e| corrupt("grant type", e)))
        .collect::<Result<Vec<_>>>()?;
    let jwks = row
        .try_get::<Option<String>, _>("jwks")?
        .map(|text| serde_json::from_str(&text).map_err(|e| corrupt("jwks", e)))
        .transpose()?;
    Ok(Client {
        id: ClientId::parse(&row.try_get::<String, _>("id")?)
            .map_err(|e| corrupt("client id", e))?,
        name: row.try_get("name")?,
        secret_hash: row
            .try_get::<Option<String>, _>("secret_hash")?
            .map(TokenHash::from_hex),
        auth_method: ClientAuthMethod::parse(&row.try_get::<String, _>("auth_method")?)
            .map_err(|e| corrupt("auth method", e))?,
        redirect_uris: list("redirect_uris")?,
        post_logout_redirect_uris: list("post_logout_redirect_uris")?,
        backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
        grant_types,
        jwks,
        service: row.try_get("service")?,
        enablement_uri: row.try_get("enablement_uri")?,
        access_token_format: AccessTokenFormat::parse(
            &row.try_get::<String, _>("access_token_format")?,
        )
        .map_err(|e| corrupt("access token format", e))?,
        created_at: row.try_get("created_at")?,
    })
}

/// The values bound as $2.. in both INSERT and UPDATE, in column order.
struct Columns {
    redirect_uris: String,
    post_logout_redirect_uris: String,
    grant_types: String,
    jwks: Option<String>,
}

impl Columns {
    fn of(c: &Client) -> Result<Columns> {
        let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(Columns {
            redirect_uris: json_text(&c.redirect_uris)?,
            post_logout_redirect_uris: json_text(&c.post_logout_redirect_uris)?,
            grant_types: json_text(&grants)?,
            jwks: c.jwks.as_ref().map(json_text).transpose()?,
        })
    }
}

#[async_trait]
impl ClientStore for SqlStore {
    async fn insert_client(&self, c: &Client) -> Result<()> {
        let cols = Columns::of(c)?;
        sqlx::query(
            "INSERT INTO clients (id, name, secret_hash, auth_method, redirect_uris, \
             post_logout_redirect_uris, backchannel_logout_uri, grant_types, jwks, service, \
             enablement_uri, access_token_format, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.secret_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(c.auth_method.as_str())
        .bind(cols.redirect_uris)
        .bind(cols.post_logout_redirect_uris)
        .bind(c.backchannel_logout_uri.clone())
        .bind(cols.grant_types)
        .bind(cols.jwks)
        .bind(c.service.clone())
        .bind(c.enablement_uri.clone())
        .bind(c.access_token_format.as_str())
        .bind(c.created_at)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| match e {
            // The id is the only unique key of the table.
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                CoreError::Conflict("client_id")
            }
            e => CoreError::Storage(e),
        })?;
        Ok(())
    }

    async fn client_by_id(&self, id: &ClientId) -> Result<Option<Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> Result<Vec<Client>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn delete_client(&self, id: &ClientId) -> Result<bool> {
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn update_client(&self, c: &Client) -> Result<()> {
        let cols = Columns::of(c)?;
        let done = sqlx::query(
            "UPDATE clients SET name = $2, secret_hash = $3, auth_method = $4, \
             redirect_uris = $5, post_logout_redirect_uris = $6, backchannel_logout_uri = $7, \
             grant_types = $8, jwks = $9, service = $10, enablement_uri = $11, \
             access_token_format = $12, updated_at = $13 WHERE id = $1",
        )
        .bind(c.id.as_str())
        .bind(&c.name)
        .bind(c.secret_hash.as_ref().map(|h| h.as_str().to_string()))
        .bind(c.auth_method.as_str())
        .bind(cols.redirect_uris)
        .bind(cols.post_logout_redirect_uris)
        .bind(c.backchannel_logout_uri.clone())
        .bind(cols.grant_types)
        .bind(cols.jwks)
        .bind(c.service.clone())
        .bind(c.enablement_uri.clone())
        .bind(c.access_token_format.as_str())
        .bind(now())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(CoreError::NotFound("client"));
        }
        Ok(())
    }
}
