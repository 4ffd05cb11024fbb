//! The store through the kinds' types: `store.get_as::<Build>(ns, name)`.
//! The untyped methods stay for the REST layer, which passes objects
//! through without reasoning about their fields.

use crate::meta::Object;
use crate::model::Resource;
use crate::selector::LabelSelector;
use crate::status::Status;

use super::{Store, StoreError, UpdateScope};

fn typed<T: Resource>(obj: &Object) -> Result<T, StoreError> {
    T::from_object(obj).map_err(|e| {
        StoreError::Corrupt(format!(
            "{} {}/{}: {e}",
            T::KIND.kind,
            obj.metadata.namespace,
            obj.metadata.name
        ))
    })
}

fn untyped<T: Resource>(value: &T) -> Result<Object, Status> {
    value
        .to_object()
        .map_err(|e| Status::internal(format!("encoding {}: {e}", T::KIND.kind)))
}

impl Store {
    pub async fn get_as<T: Resource>(&self, ns: &str, name: &str) -> Result<T, StoreError> {
        let body = self.get_raw(T::KIND, ns, name).await?;
        serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("{} {ns}/{name}: {e}", T::KIND.kind)))
    }

    /// [`Store::get_as`], `None` when there is no such object.
    pub async fn find_as<T: Resource>(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get_as(ns, name).await {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Store::find_as`] for many objects of one kind, in one query.
    pub async fn find_many_as<T: Resource>(
        &self,
        targets: &[(String, String)],
    ) -> Result<Vec<Option<T>>, StoreError> {
        self.find_many_raw(T::KIND, targets)
            .await?
            .into_iter()
            .map(|body| {
                body.map(|b| {
                    serde_json::from_str(&b)
                        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", T::KIND.kind)))
                })
                .transpose()
            })
            .collect()
    }

    pub async fn list_as<T: Resource>(
        &self,
        ns: &str,
        selector: &LabelSelector,
    ) -> Result<(Vec<T>, i64), StoreError> {
        let (items, rv) = self.list(T::KIND, ns, selector).await?;
        let items = items.iter().map(typed).collect::<Result<_, _>>()?;
        Ok((items, rv))
    }

    pub async fn create_as<T: Resource>(&self, value: &T) -> Result<T, StoreError> {
        let obj = untyped(value).map_err(StoreError::Rejected)?;
        typed(&self.create(T::KIND, obj).await?)
    }

    /// [`Store::mutate`] on the typed object.
    pub async fn mutate_as<T, F>(
        &self,
        ns: &str,
        name: &str,
        precondition: Option<i64>,
        scope: UpdateScope,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Resource,
        F: FnOnce(&mut T) -> Result<(), Status> + Send,
    {
        let (updated, _) = self
            .mutate_spawning_as(ns, name, precondition, scope, |v: &mut T| {
                f(v).map(|()| Vec::new())
            })
            .await?;
        Ok(updated)
    }

    /// [`Store::mutate_many_spawning`] on typed objects.
    pub async fn mutate_many_spawning_as<T, F>(
        &self,
        targets: &[(String, String)],
        scope: UpdateScope,
        mut f: F,
    ) -> Result<Vec<Result<(T, Vec<Object>), StoreError>>, StoreError>
    where
        T: Resource,
        F: FnMut(usize, &mut T) -> Result<Vec<(&'static crate::KindInfo, Object)>, Status> + Send,
    {
        let outcomes = self
            .mutate_many_spawning(T::KIND, targets, scope, |i, obj| {
                let mut value: T = T::from_object(obj).map_err(|e| {
                    Status::internal(format!(
                        "decoding {} {}: {e}",
                        T::KIND.kind,
                        obj.metadata.name
                    ))
                })?;
                let children = f(i, &mut value)?;
                *obj = untyped(&value)?;
                Ok(children)
            })
            .await?;
        Ok(outcomes
            .into_iter()
            .map(|o| o.and_then(|(obj, created)| Ok((typed(&obj)?, created))))
            .collect())
    }

    /// [`Store::mutate_spawning`] on the typed object: `f` edits it and
    /// returns the objects to create in the same transaction.
    pub async fn mutate_spawning_as<T, F>(
        &self,
        ns: &str,
        name: &str,
        precondition: Option<i64>,
        scope: UpdateScope,
        f: F,
    ) -> Result<(T, Vec<Object>), StoreError>
    where
        T: Resource,
        F: FnOnce(&mut T) -> Result<Vec<(&'static crate::KindInfo, Object)>, Status> + Send,
    {
        let (updated, created) = self
            .mutate_spawning(T::KIND, ns, name, precondition, scope, |obj| {
                let mut value: T = T::from_object(obj).map_err(|e| {
                    Status::internal(format!("decoding {} {ns}/{name}: {e}", T::KIND.kind))
                })?;
                let children = f(&mut value)?;
                *obj = untyped(&value)?;
                Ok(children)
            })
            .await?;
        Ok((typed(&updated)?, created))
    }
}
