//! The checkpoint in a ConfigMap, key `lastPublishedTime`. Every update carries the
//! resourceVersion that was read, so two runs can never both advance it: the second gets
//! 409 Conflict and stops.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tracing::{debug, info};

use super::{CheckpointError, KEY, Result, parse_value};
use crate::window::{HourWindow, rfc3339};

pub struct ConfigMapCheckpoint {
    api: Api<ConfigMap>,
    name: String,
    namespace: String,
    /// The object as last read or written; its resourceVersion is the precondition of the
    /// next update.
    current: Option<ConfigMap>,
    /// The last read found no ConfigMap: [`Self::prepare`] creates it.
    missing: bool,
}

/// The namespace a pod runs in, from its service account mount.
pub fn pod_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl ConfigMapCheckpoint {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            namespace: namespace.to_string(),
            current: None,
            missing: false,
        }
    }

    pub fn describe(&self) -> String {
        format!("ConfigMap {}/{} key {KEY}", self.namespace, self.name)
    }

    fn api_error(&self, verb: &'static str, e: kube::Error) -> CheckpointError {
        let location = self.describe();
        match &e {
            kube::Error::Api(s) if s.code == 403 => CheckpointError::Forbidden {
                location,
                verb,
                reason: s.message.clone(),
            },
            kube::Error::Api(s) if s.code == 409 => CheckpointError::Conflict { location },
            kube::Error::Api(s) if s.code == 404 => CheckpointError::MissingConfigMap {
                location,
                name: self.name.clone(),
                namespace: self.namespace.clone(),
            },
            _ => CheckpointError::Api {
                location,
                reason: e.to_string(),
            },
        }
    }

    /// Read the ConfigMap. A missing key or a missing ConfigMap is a first run (`None`); a
    /// publishing run creates a missing ConfigMap in [`Self::prepare`] before it sends anything.
    /// A key that is present but blank (`lastPublishedTime: ""` from `kubectl edit` or a GitOps
    /// manifest) is refused like a blank checkpoint file: taken for a first run it would bill
    /// only the newest hour and never the ones since the checkpoint was lost.
    pub async fn load(&mut self, now: DateTime<Utc>) -> Result<Option<HourWindow>> {
        let cm = match self.api.get_opt(&self.name).await {
            Ok(Some(cm)) => cm,
            Ok(None) => {
                info!(configmap = %self.describe(), "the checkpoint ConfigMap does not exist yet: first run");
                self.current = None;
                self.missing = true;
                return Ok(None);
            }
            Err(e) => return Err(self.api_error("get", e)),
        };
        let value = cm.data.as_ref().and_then(|d| d.get(KEY)).cloned();
        self.current = Some(cm);
        self.missing = false;
        match value {
            None => Ok(None),
            Some(v) => parse_value(&self.describe(), &v, now).map(Some),
        }
    }

    /// Make sure the checkpoint can be written before anything is published: create the
    /// ConfigMap (without the key) if the last read found none. The shipped Role does not grant
    /// `create` (it cannot be limited to one name), so there a missing ConfigMap stops the run
    /// here, with nothing sent. An existing one gets a dry-run update (`dryRun=All`) with the
    /// resourceVersion read: the API server authorizes and checks the precondition exactly as
    /// for the real update and stores nothing, so a service account that may read but not
    /// update it (403), or a run that already lost the race (409), stops before anything is
    /// sent instead of publishing its oldest hour again on every run.
    pub async fn prepare(&mut self) -> Result<()> {
        if !self.missing {
            let Some(current) = &self.current else {
                return Ok(());
            };
            let dry_run = PostParams {
                dry_run: true,
                ..Default::default()
            };
            self.api
                .replace(&self.name, &dry_run, current)
                .await
                .map_err(|e| self.api_error("update", e))?;
            debug!(configmap = %self.describe(), "the checkpoint may be updated (dry run)");
            return Ok(());
        }
        let created = self
            .api
            .create(&PostParams::default(), &self.new_configmap())
            .await
            .map_err(|e| self.create_error(e))?;
        info!(configmap = %self.describe(), "created the checkpoint ConfigMap");
        self.current = Some(created);
        self.missing = false;
        Ok(())
    }

    /// Prove, without storing anything, that [`Self::prepare`] and the first update would be
    /// allowed: a dry-run create (`dryRun=All`) when the last read found no ConfigMap, a
    /// dry-run update with the resourceVersion read otherwise. The API server authorizes and
    /// validates both as real requests and persists neither. `consumption-metrics check` uses
    /// this: a real create there would leave a ConfigMap without the key, which the next run
    /// takes for a first run, skipping every hour since the checkpoint was lost.
    pub async fn verify_writable(&self) -> Result<()> {
        let dry_run = PostParams {
            dry_run: true,
            ..Default::default()
        };
        if !self.missing {
            let Some(current) = &self.current else {
                return Ok(());
            };
            self.api
                .replace(&self.name, &dry_run, current)
                .await
                .map_err(|e| self.api_error("update", e))?;
            return Ok(());
        }
        self.api
            .create(&dry_run, &self.new_configmap())
            .await
            .map_err(|e| self.create_error(e))?;
        Ok(())
    }

    /// The ConfigMap a first run creates: the key is written by the first advance.
    fn new_configmap(&self) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/name".to_string(),
                    "consumption-metrics".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn create_error(&self, e: kube::Error) -> CheckpointError {
        match &e {
            kube::Error::Api(s) if s.code == 403 => CheckpointError::CannotCreate {
                location: self.describe(),
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                reason: s.message.clone(),
            },
            _ => self.api_error("create", e),
        }
    }

    /// Before a write: read the ConfigMap if this run has not (a malformed value, e.g. the Go
    /// job's, may be replaced, so read errors are not fatal here) and create it if missing.
    pub async fn ensure_read(&mut self, now: DateTime<Utc>) -> Result<()> {
        if self.current.is_none() {
            let _ = self.load(now).await;
            self.prepare().await?;
        }
        Ok(())
    }

    /// The value as last read or written (no request).
    pub fn stored(&self, now: DateTime<Utc>) -> Result<Option<HourWindow>> {
        match self
            .current
            .as_ref()
            .and_then(|cm| cm.data.as_ref()?.get(KEY))
        {
            Some(v) if !v.trim().is_empty() => parse_value(&self.describe(), v, now).map(Some),
            _ => Ok(None),
        }
    }

    /// Set the key to `end`, with the resourceVersion read last as precondition: a run that
    /// lost the race gets 409 Conflict. The never-backwards rule is
    /// [`super::Checkpoint::set`]'s.
    pub async fn write(&mut self, end: DateTime<Utc>) -> Result<()> {
        let mut cm = self.current.clone().unwrap_or_default();
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert(KEY.to_string(), rfc3339(end));
        let updated = self
            .api
            .replace(&self.name, &PostParams::default(), &cm)
            .await
            .map_err(|e| self.api_error("update", e))?;
        debug!(checkpoint = %rfc3339(end), configmap = %self.describe(), "checkpoint written");
        self.current = Some(updated);
        Ok(())
    }
}
