//! The key of the keyed digest written on workloads: 32 random bytes, made once
//! and kept in a Secret in the operator's namespace, so that every replica (and
//! every restart) writes the same value for the same data, and a reader of
//! Deployments cannot test guesses of a Secret's value against it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

/// The data key inside the Secret.
pub const DATA_KEY: &str = "key";
const KEY_LEN: usize = 32;

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum HashKeyError {
    #[error("cannot read or create the hash key Secret {namespace}/{name}: {}", crate::cluster::errors::Explain(.source))]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the hash key Secret {namespace}/{name} has no {DATA_KEY:?} entry of {KEY_LEN} bytes; \
         delete it to have a new one made (every workload then rolls once at its next change)"
    )]
    Malformed { namespace: String, name: String },
    #[error("no randomness for a new hash key: {0}")]
    Random(getrandom::Error),
}

/// Reads the key from `namespace/name`, creating the Secret if it is missing.
/// Two replicas starting together both try to create it; the loser of that
/// race reads the winner's.
pub async fn load_or_create(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<[u8; KEY_LEN], HashKeyError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let api_error = |source| HashKeyError::Api {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    if let Some(secret) = api.get_opt(name).await.map_err(api_error)? {
        return key_of(&secret).ok_or_else(|| HashKeyError::Malformed {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        });
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(HashKeyError::Random)?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_owned(),
                "rekindle-operator".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            DATA_KEY.to_owned(),
            ByteString(key.to_vec()),
        )])),
        immutable: Some(true),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), "created the hash key Secret");
            Ok(key)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let secret = api.get(name).await.map_err(api_error)?;
            key_of(&secret).ok_or_else(|| HashKeyError::Malformed {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        }
        Err(error) => Err(api_error(error)),
    }
}

fn key_of(secret: &Secret) -> Option<[u8; KEY_LEN]> {
    let bytes = secret.data.as_ref()?.get(DATA_KEY)?;
    bytes.0.as_slice().try_into().ok()
}
